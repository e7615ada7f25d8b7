"""Shape checks of client input, shared by the WebSocket frames and the REST views.

Plain functions rather than DRF serializers on the socket path: they run once per frame, and a
serializer costs more than the rest of the frame's CPU work together. The REST serializers
describe the same shapes for the schema and call the same checks (ids, body size).

The checks that are not about chat (ids within the database's BIGINT, strings free of NUL
and lone surrogates, JSON too deep to parse) live in messenger.validation: the consumer
applies the string check to every frame and the REST parser to every body, and ids_parse
bounds every envelope id with it.
"""

import uuid

from django.conf import settings

from accounts.models import MAX_DEVICE_ID, MIN_DEVICE_ID, normalize_email
from chat.errors import BodyTooLarge, InvalidFrame, InvalidKeys
from chat.models import Envelope
from messenger.validation import MAX_DATABASE_ID, is_database_id

MAX_IDS_PER_FRAME = 1000
MAX_EMAIL_LENGTH = 254
TYPING_STATES = ("start", "stop")
KINDS = frozenset(Envelope.Kind.values)


def body_size_check(body: str) -> int:
    """The body's size in bytes; BodyTooLarge past MESSAGE_MAX_BODY_BYTES."""
    size = len(body.encode("utf-8"))
    if size > settings.MESSAGE_MAX_BODY_BYTES:
        raise BodyTooLarge(f"The message body is larger than {settings.MESSAGE_MAX_BODY_BYTES} bytes.")
    return size


def client_id_parse(value) -> uuid.UUID:
    if not isinstance(value, str):
        raise InvalidFrame("client_id must be a UUID string.", code="invalid_client_id")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidFrame("client_id must be a UUID string.", code="invalid_client_id") from None


def email_parse(value, field: str = "to") -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_EMAIL_LENGTH:
        raise InvalidFrame(f"{field} must be the email of a contact.")
    return value


def kind_parse(value) -> str:
    if not isinstance(value, str) or value not in KINDS:  # a list is unhashable: TypeError
        raise InvalidFrame(f"kind must be one of {', '.join(sorted(KINDS))}.", code="invalid_kind")
    return value


def body_parse(value) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidFrame("body must be a non-empty string.")
    return value


def ids_parse(value) -> list[int]:
    """A non-empty list of envelope ids, at most MAX_IDS_PER_FRAME, deduplicated in order.
    Each is an int (not a bool, not a float) from 1 to MAX_DATABASE_ID, the range of the id
    column: a larger one fails in SQLite's driver (see messenger.validation)."""
    if not isinstance(value, list) or not value or len(value) > MAX_IDS_PER_FRAME:
        raise InvalidFrame(f"ids must be a list of 1 to {MAX_IDS_PER_FRAME} envelope ids.", code="invalid_ids")
    seen: dict[int, None] = {}
    for item in value:
        if not is_database_id(item):
            raise InvalidFrame(f"ids must be integers from 1 to {MAX_DATABASE_ID}.", code="invalid_ids")
        seen[item] = None
    return list(seen)


def copies_parse(value, field: str, at_least_one: bool = False) -> list[tuple[int, str, str]]:
    """The `copies` or `own` list of a version-2 `send` (docs/PROTOCOL.md section 17.1):
    objects `{device, kind, body}` with distinct device ids from 1 to 2^31-1, each body within
    MESSAGE_MAX_BODY_BYTES, at most DEVICES_PER_ACCOUNT_MAX of them; as (device, kind, body)
    tuples."""
    limit = settings.DEVICES_PER_ACCOUNT_MAX
    if not isinstance(value, list) or len(value) > limit or (at_least_one and not value):
        low = 1 if at_least_one else 0
        raise InvalidFrame(f"{field} must be a list of {low} to {limit} copies.", code="invalid_copies")
    copies, seen = [], set()
    for item in value:
        if not isinstance(item, dict) or set(item) != {"device", "kind", "body"}:
            raise InvalidFrame(f"Each of {field} is {{device, kind, body}}.", code="invalid_copies")
        device = item["device"]
        if isinstance(device, bool) or not isinstance(device, int) or not MIN_DEVICE_ID <= device <= MAX_DEVICE_ID:
            raise InvalidFrame(
                f"A device in {field} must be an integer from 1 to {MAX_DEVICE_ID}.", code="invalid_copies"
            )
        if device in seen:
            raise InvalidFrame(f"A device appears twice in {field}.", code="invalid_copies")
        seen.add(device)
        body = body_parse(item["body"])
        body_size_check(body)
        copies.append((device, kind_parse(item["kind"]), body))
    return copies


def typing_state_parse(value) -> str:
    if not isinstance(value, str) or value not in TYPING_STATES:
        raise InvalidFrame('state must be "start" or "stop".')
    return value


# A sender key distribution (89 bytes) in a pairwise prekey envelope is 324 characters.
GROUP_KEY_BODY_MAX = 1024
MAX_EPOCH = 2**31 - 1


def group_id_parse(value) -> uuid.UUID:
    if not isinstance(value, str):
        raise InvalidFrame("group must be a group id.", code="invalid_group")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidFrame("group must be a group id.", code="invalid_group") from None


def epoch_parse(value) -> int:
    if type(value) is not int or not 1 <= value <= MAX_EPOCH:
        raise InvalidFrame(f"epoch must be an integer from 1 to {MAX_EPOCH}.", code="invalid_epoch")
    return value


def group_keys_parse(value) -> list[tuple[str, int, str, str]]:
    """The `keys` of a `group_send` (docs/PROTOCOL.md section 23): objects `{email, device,
    kind, body}`, at most one per device, each body within GROUP_KEY_BODY_MAX characters, at
    most GROUP_MEMBERS_MAX x DEVICES_PER_ACCOUNT_MAX of them; as (email, device, kind, body).
    Whether they name current member devices is decided with the database."""
    limit = settings.GROUP_MEMBERS_MAX * settings.DEVICES_PER_ACCOUNT_MAX
    if not isinstance(value, list) or len(value) > limit:
        raise InvalidKeys(f"keys must be a list of at most {limit} entries.")
    keys, seen = [], set()
    for item in value:
        if not isinstance(item, dict) or set(item) != {"email", "device", "kind", "body"}:
            raise InvalidKeys("Each of keys is {email, device, kind, body}.")
        email, device, kind, body = item["email"], item["device"], item["kind"], item["body"]
        if not isinstance(email, str) or not email or len(email) > MAX_EMAIL_LENGTH:
            raise InvalidKeys("The email of a key entry must be a member's.")
        if type(device) is not int or not MIN_DEVICE_ID <= device <= MAX_DEVICE_ID:
            raise InvalidKeys(f"The device of a key entry must be an integer from 1 to {MAX_DEVICE_ID}.")
        if not isinstance(kind, str) or kind not in KINDS:
            raise InvalidKeys(f"The kind of a key entry must be one of {', '.join(sorted(KINDS))}.")
        if not isinstance(body, str) or not body or len(body) > GROUP_KEY_BODY_MAX:
            raise InvalidKeys(f"The body of a key entry must be 1 to {GROUP_KEY_BODY_MAX} characters.")
        email = normalize_email(email)
        if (email, device) in seen:
            raise InvalidKeys("A device appears twice in keys.")
        seen.add((email, device))
        keys.append((email, device, kind, body))
    return keys
