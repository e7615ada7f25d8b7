"""Sender keys (docs/PROTOCOL.md section 22), the same functions as static/js/crypto/senderkey.js.

Group messages are encrypted once for every member device and signed by the sending device::

    create_sender_key()                             -> own sender key state (store it; SECRET)
    sender_key_distribution(state, group_id)        -> 89 bytes, sent to each member device pairwise
    parse_sender_key_distribution(data, group_id)   -> received_sender_keys(record, distribution) -> record
    await encrypt_group_message(state, ...)         -> (state, body); persist state before sending body
    await decrypt_group_message(record, ...)        -> (record, plaintext)

    mk, CK = KDF_CK(CK)                                   (section 5.1); n = n + 1
    header = 0x01 || u32(key_id) || u32(n)
    AD     = group id (16) || sender IK (32) || u32(sender device) || header
    body   = base64(header || ENCRYPT(mk, plaintext, AD) || Ed25519(SIG, AD || sealed))

Why a signature on top of the MAC: every member holds CK, so the MAC only proves that *a member* wrote
the message; only the sending device holds SIG's private half. The signature is checked (with xeddsa, the
strict rule that signed prekeys are verified with, section 2) before any key is derived or consumed. AD
binds the group, the sender's identity key and device, so a relabelled message fails it.

A receiver's record for one (group, sender, device) keeps the sender key last distributed and the one
before it, each with its skipped message keys (at most MAX_STORED_SKIPPED_KEYS, oldest evicted first). A
distribution of a key id already held changes nothing: a replay must never move a chain back.

States and records are the JSON objects of the JavaScript side (same field names, base64 bytes), so they
can move between the two clients. Every function returns new objects and never mutates its arguments; a
failure leaves the caller's record as it was. KDF_CK is the sessions' :class:`.library.MessageChainKDF`
and ENCRYPT/DECRYPT their :class:`.library.MessageAEAD`. Python ``bytes`` cannot be wiped.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import xeddsa
from doubleratchet import AuthenticationFailedException, DecryptionFailedException

from .constants import (
    AES_BLOCK_LENGTH,
    GROUP_HEADER_LENGTH,
    GROUP_ID_LENGTH,
    GROUP_NAME_MAX_LENGTH,
    GROUP_PLAINTEXT_SETTINGS,
    GROUP_PLAINTEXT_TEXT,
    KEY_LENGTH,
    MAC_LENGTH,
    MAX_BODY_LENGTH,
    MAX_KEY_ID,
    MAX_MESSAGE_NUMBER,
    MAX_PLAINTEXT_BYTES,
    MAX_SKIP,
    MAX_STORED_SKIPPED_KEYS,
    MESSAGE_CHAIN_CONSTANT,
    MIN_KEY_ID,
    SENDER_KEY_DISTRIBUTION_LENGTH,
    SENDER_KEY_VERSION,
    SIGNATURE_LENGTH,
)
from .encoding import b64decode, b64encode
from .errors import ErrorCode, ProtocolError
from .library import MessageAEAD, MessageChainKDF

RandomSource = Callable[[int], bytes]

SENDER_KEY_STATE_VERSION = 1

# The server's group ids: a UUID in its lowercase text form.
_GROUP_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Header, one AES block, the tag and the signature: the shortest body a sender can produce.
_MIN_BODY_BYTES = GROUP_HEADER_LENGTH + AES_BLOCK_LENGTH + MAC_LENGTH + SIGNATURE_LENGTH
# U+0000-U+001F and U+007F-U+009F (Unicode category Cc), refused in a group name.
_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f]")
_ENCODED_KEY = re.compile(r"[A-Za-z0-9+/]{43}=")


@dataclass(frozen=True)
class SenderKeyDistribution:
    """A parsed distribution (:func:`parse_sender_key_distribution`); ``chain_key`` is SECRET."""

    key_id: int
    iteration: int
    chain_key: bytes = field(repr=False)
    signing_key: bytes


def _invalid_argument(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID_ARGUMENT, message)


def _invalid_state(what: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID_SESSION_STATE, f"sender key state: bad {what}")


def _invalid_sender_key(why: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID_SENDER_KEY, f"invalid sender key distribution: {why}")


def _malformed(why: str) -> ProtocolError:
    return ProtocolError(ErrorCode.MALFORMED_ENVELOPE, f"malformed group message: {why}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_key_id(value: object) -> bool:
    return _is_int(value) and MIN_KEY_ID <= value <= MAX_KEY_ID  # type: ignore[operator]


def _is_iteration(value: object) -> bool:
    return _is_int(value) and 0 <= value <= MAX_MESSAGE_NUMBER  # type: ignore[operator]


def _group_id_bytes(group_id: object) -> bytes:
    if not isinstance(group_id, str) or _GROUP_ID.fullmatch(group_id) is None:
        raise _invalid_argument("group id must be a lowercase UUID")
    return bytes.fromhex(group_id.replace("-", ""))


def _key_id_of(signing_key: bytes) -> int:
    """Section 22: the key id is a function of the signing key, in 1 .. 2^31 - 1."""
    return MIN_KEY_ID + int.from_bytes(signing_key[:4], "big") % MAX_KEY_ID


def _sender_labels(group_id: object, sender_identity_key: object, sender_device: object) -> bytes:
    """The sender's labels (the server's, checked against the receiver's own knowledge) as AD bytes."""
    group = _group_id_bytes(group_id)
    if not isinstance(sender_identity_key, bytes) or len(sender_identity_key) != KEY_LENGTH:
        raise _invalid_argument(f"sender identity key must be {KEY_LENGTH} bytes")
    if not _is_key_id(sender_device):
        raise _invalid_argument(f"sender device must be an integer in [1, {MAX_KEY_ID}]")
    return group + sender_identity_key + sender_device.to_bytes(4, "big")  # type: ignore[union-attr]


def _header(key_id: int, iteration: int) -> bytes:
    return bytes([SENDER_KEY_VERSION]) + key_id.to_bytes(4, "big") + iteration.to_bytes(4, "big")


async def _chain_step(chain_key: bytes) -> tuple[bytes, bytes]:
    """KDF_CK: (next chain key, message key)."""
    output = await MessageChainKDF.derive(chain_key, MESSAGE_CHAIN_CONSTANT, 2 * KEY_LENGTH)
    return output[:KEY_LENGTH], output[KEY_LENGTH:]


# -- own sender key -------------------------------------------------------------------------------------


@dataclass
class _OwnKey:
    key_id: int
    chain_key: bytes
    iteration: int
    signing_seed: bytes
    signing_key: bytes


def _decode_own_state(state: Any) -> _OwnKey:
    if not isinstance(state, dict) or state.get("version") != SENDER_KEY_STATE_VERSION:
        raise _invalid_state("version")
    code = ErrorCode.INVALID_SESSION_STATE
    chain_key = b64decode(state.get("chainKey"), length=KEY_LENGTH, code=code, what="sender key chainKey")
    signing_seed = b64decode(state.get("signingSeed"), length=KEY_LENGTH, code=code, what="sender key signingSeed")
    if not _is_iteration(state.get("iteration")):
        raise _invalid_state("iteration")
    signing_key = xeddsa.seed_to_ed25519_pub(signing_seed)
    key_id = state.get("keyId")
    if not _is_int(key_id) or key_id != _key_id_of(signing_key):
        raise _invalid_state("keyId")
    return _OwnKey(key_id, chain_key, state["iteration"], signing_seed, signing_key)


def _encode_own_state(own: _OwnKey) -> dict[str, Any]:
    return {
        "version": SENDER_KEY_STATE_VERSION,
        "keyId": own.key_id,
        "chainKey": b64encode(own.chain_key),
        "iteration": own.iteration,
        "signingSeed": b64encode(own.signing_seed),
    }


def _draw(random: RandomSource | None, length: int) -> bytes:
    value = (random or secrets.token_bytes)(length)
    if not isinstance(value, bytes) or len(value) != length:
        raise _invalid_argument(f"random source must return {length} bytes")
    return value


def create_sender_key(*, random: RandomSource | None = None) -> dict[str, Any]:
    """A new sender key: two draws, CK first, then SIG's seed (section 5.5)."""
    chain_key = _draw(random, KEY_LENGTH)
    signing_seed = _draw(random, KEY_LENGTH)
    signing_key = xeddsa.seed_to_ed25519_pub(signing_seed)
    return _encode_own_state(_OwnKey(_key_id_of(signing_key), chain_key, 0, signing_seed, signing_key))


def sender_key_distribution(state: Any, group_id: str) -> bytes:
    """``0x01 || group id || u32(key_id) || u32(n) || CK || SIG public`` (89 bytes, SECRET) of the key as
    it is now: the receiver reads messages from n on."""
    group = _group_id_bytes(group_id)
    own = _decode_own_state(state)
    return (
        bytes([SENDER_KEY_VERSION])
        + group
        + own.key_id.to_bytes(4, "big")
        + own.iteration.to_bytes(4, "big")
        + own.chain_key
        + own.signing_key
    )


async def encrypt_group_message(
    state: Any, *, group_id: str, sender_identity_key: bytes, sender_device: int, plaintext: bytes
) -> tuple[dict[str, Any], str]:
    """Encrypts and signs ``plaintext`` (starting with its type byte) with our identity key and device id.

    Returns the new state, to persist before the body leaves, and the body.
    """
    labels = _sender_labels(group_id, sender_identity_key, sender_device)
    if not isinstance(plaintext, bytes) or not plaintext:
        raise _invalid_argument("plaintext must be non-empty bytes starting with its type byte")
    if len(plaintext) > MAX_PLAINTEXT_BYTES:
        raise ProtocolError(ErrorCode.PLAINTEXT_TOO_LARGE, f"plaintext is over {MAX_PLAINTEXT_BYTES} bytes")
    own = _decode_own_state(state)
    if own.iteration >= MAX_MESSAGE_NUMBER:
        raise ProtocolError(ErrorCode.CHAIN_EXHAUSTED, "sender key is exhausted; make a new one")
    next_chain_key, message_key = await _chain_step(own.chain_key)
    header = _header(own.key_id, own.iteration)
    associated_data = labels + header
    sealed = await MessageAEAD.encrypt(plaintext, message_key, associated_data)
    signature = xeddsa.ed25519_seed_sign(own.signing_seed, associated_data + sealed)
    own.chain_key, own.iteration = next_chain_key, own.iteration + 1
    return _encode_own_state(own), b64encode(header + sealed + signature)


# -- received sender keys -------------------------------------------------------------------------------


def _check_signing_key(key_id: int, signing_key: bytes) -> None:
    """A valid Ed25519 key as section 2 requires (canonical, prime order), and the key id it determines.

    libsodium's conversion refuses small-order keys and keys with a torsion component; every
    non-canonical encoding decodes to such a point, so it refuses those too.
    """
    try:
        xeddsa.ed25519_pub_to_curve25519_pub(signing_key)
    except Exception as error:
        raise _invalid_sender_key("the signing key is not a valid Ed25519 public key") from error
    if key_id != _key_id_of(signing_key):
        raise _invalid_sender_key("the key id does not match the signing key")


def parse_sender_key_distribution(data: bytes, group_id: str) -> SenderKeyDistribution:
    """Reads a distribution received (in a pairwise envelope) for group ``group_id``.

    Any deviation from section 22 is INVALID_SENDER_KEY.
    """
    group = _group_id_bytes(group_id)
    if not isinstance(data, bytes):
        raise _invalid_argument("distribution must be bytes")
    if len(data) != SENDER_KEY_DISTRIBUTION_LENGTH or data[0] != SENDER_KEY_VERSION:
        raise _invalid_sender_key(f"not {SENDER_KEY_DISTRIBUTION_LENGTH} bytes starting with {SENDER_KEY_VERSION}")
    if data[1 : 1 + GROUP_ID_LENGTH] != group:
        raise _invalid_sender_key("for another group")
    key_id = int.from_bytes(data[17:21], "big")
    iteration = int.from_bytes(data[21:25], "big")
    chain_key, signing_key = data[25 : 25 + KEY_LENGTH], data[25 + KEY_LENGTH :]
    _check_signing_key(key_id, signing_key)
    return SenderKeyDistribution(key_id=key_id, iteration=iteration, chain_key=chain_key, signing_key=signing_key)


@dataclass
class _ReceivedKey:
    key_id: int
    iteration: int
    chain_key: bytes
    signing_key: bytes
    # iteration -> base64 message key, oldest first (dicts keep insertion order)
    skipped: dict[int, str]


def _decode_received_key(data: Any) -> _ReceivedKey:
    if not isinstance(data, dict):
        raise _invalid_state("received key")
    code = ErrorCode.INVALID_SESSION_STATE
    chain_key = b64decode(data.get("chainKey"), length=KEY_LENGTH, code=code, what="sender key chainKey")
    signing_key = b64decode(data.get("signingKey"), length=KEY_LENGTH, code=code, what="sender key signingKey")
    key_id, iteration = data.get("keyId"), data.get("iteration")
    if not _is_int(key_id) or key_id != _key_id_of(signing_key):
        raise _invalid_state("keyId")
    if not _is_iteration(iteration):
        raise _invalid_state("iteration")
    entries = data.get("skippedMessageKeys")
    if not isinstance(entries, list) or len(entries) > MAX_STORED_SKIPPED_KEYS:
        raise _invalid_state("skippedMessageKeys")
    skipped: dict[int, str] = {}
    for entry in entries:
        number = entry.get("iteration") if isinstance(entry, dict) else None
        message_key = entry.get("messageKey") if isinstance(entry, dict) else None
        if (
            not _is_iteration(number)
            or number >= iteration
            or number in skipped
            or not isinstance(message_key, str)
            or _ENCODED_KEY.fullmatch(message_key) is None
        ):
            raise _invalid_state("skipped key")
        skipped[number] = message_key
    return _ReceivedKey(key_id, iteration, chain_key, signing_key, skipped)


def _encode_received_key(key: _ReceivedKey) -> dict[str, Any]:
    return {
        "keyId": key.key_id,
        "iteration": key.iteration,
        "chainKey": b64encode(key.chain_key),
        "signingKey": b64encode(key.signing_key),
        "skippedMessageKeys": [{"iteration": n, "messageKey": mk} for n, mk in key.skipped.items()],
    }


def _decode_record(record: Any) -> tuple[_ReceivedKey, _ReceivedKey | None]:
    if not isinstance(record, dict) or record.get("version") != SENDER_KEY_STATE_VERSION:
        raise _invalid_state("record version")
    current = _decode_received_key(record.get("current"))
    previous = None if record.get("previous") is None else _decode_received_key(record["previous"])
    if "previous" not in record or (previous is not None and previous.key_id == current.key_id):
        raise _invalid_state("previous")
    return current, previous


def _encode_record(current: _ReceivedKey, previous: _ReceivedKey | None) -> dict[str, Any]:
    return {
        "version": SENDER_KEY_STATE_VERSION,
        "current": _encode_received_key(current),
        "previous": None if previous is None else _encode_received_key(previous),
    }


def received_sender_keys(record: Any, distribution: SenderKeyDistribution) -> dict[str, Any]:
    """Takes in a parsed distribution; returns the record to store for (group, sender, device).

    A new key id becomes the current key and the current one the previous (the one before is forgotten).
    A key id already held (current or previous) leaves the record as it is, so a replayed distribution
    never moves a chain back; the same id with another signing key is INVALID_SENDER_KEY.
    """
    if (
        not isinstance(distribution, SenderKeyDistribution)
        or not _is_key_id(distribution.key_id)
        or not _is_iteration(distribution.iteration)
        or not isinstance(distribution.chain_key, bytes)
        or len(distribution.chain_key) != KEY_LENGTH
        or not isinstance(distribution.signing_key, bytes)
        or len(distribution.signing_key) != KEY_LENGTH
    ):
        raise _invalid_argument("expected a distribution returned by parse_sender_key_distribution")
    _check_signing_key(distribution.key_id, distribution.signing_key)
    received = _ReceivedKey(
        distribution.key_id, distribution.iteration, distribution.chain_key, distribution.signing_key, {}
    )
    if record is None:
        return _encode_record(received, None)
    current, previous = _decode_record(record)
    for key in (current, previous):
        if key is None or key.key_id != received.key_id:
            continue
        if key.signing_key != received.signing_key:
            raise _invalid_sender_key("a sender key with this key id and another signing key is already held")
        return _encode_record(current, previous)
    return _encode_record(received, current)


async def _skip_message_keys(key: _ReceivedKey, until: int) -> None:
    """Derives and stores the message keys of iterations key.iteration .. until - 1 (section 22 step 5)."""
    while key.iteration < until:
        key.chain_key, message_key = await _chain_step(key.chain_key)
        key.skipped[key.iteration] = b64encode(message_key)
        key.iteration += 1
    for number in list(key.skipped)[: max(0, len(key.skipped) - MAX_STORED_SKIPPED_KEYS)]:
        del key.skipped[number]  # oldest first


async def _take_message_key(key: _ReceivedKey, iteration: int) -> bytes:
    """The message key of iteration n, consumed from the working copy ``key`` (section 22 steps 4, 5)."""
    if iteration < key.iteration:
        stored = key.skipped.pop(iteration, None)
        if stored is None:
            raise ProtocolError(ErrorCode.DUPLICATE_MESSAGE, "message was already received or its key was discarded")
        return b64decode(stored, length=KEY_LENGTH, code=ErrorCode.INVALID_SESSION_STATE, what="skipped key")
    if iteration - key.iteration > MAX_SKIP:
        raise ProtocolError(ErrorCode.TOO_MANY_SKIPPED_MESSAGES, f"more than {MAX_SKIP} skipped messages")
    await _skip_message_keys(key, iteration)
    key.chain_key, message_key = await _chain_step(key.chain_key)
    key.iteration += 1
    return message_key


async def decrypt_group_message(
    record: Any, *, group_id: str, sender_identity_key: bytes, sender_device: int, body: str
) -> tuple[dict[str, Any], bytes]:
    """Decrypts a group message from (sender, device), with the checks in the order of section 22.

    The labels are the server's ``group``, ``from_device`` and the identity key the receiver knows for
    ``from``; ``record`` is what is stored for (group, sender, device), or None. Returns the record to
    store (only on success) and the plaintext.
    """
    labels = _sender_labels(group_id, sender_identity_key, sender_device)
    if not isinstance(body, str):
        raise _malformed("body must be a string")
    if len(body) > MAX_BODY_LENGTH:
        raise ProtocolError(ErrorCode.BODY_TOO_LARGE, "group message body is too large")
    data = b64decode(body, code=ErrorCode.MALFORMED_ENVELOPE, what="group message body")
    sealed_length = len(data) - GROUP_HEADER_LENGTH - SIGNATURE_LENGTH
    if len(data) < _MIN_BODY_BYTES or (sealed_length - MAC_LENGTH) % AES_BLOCK_LENGTH:
        raise _malformed("impossible length")
    if data[0] != SENDER_KEY_VERSION:
        raise ProtocolError(ErrorCode.UNSUPPORTED_VERSION, f"unsupported group message version {data[0]}")
    key_id = int.from_bytes(data[1:5], "big")
    iteration = int.from_bytes(data[5:9], "big")
    if iteration == MAX_MESSAGE_NUMBER:
        raise _malformed("message number 2^32 - 1 is never sent")

    if record is None:
        raise ProtocolError(ErrorCode.UNKNOWN_SENDER_KEY, "no sender key of this sender device")
    current, previous = _decode_record(record)
    key = next((k for k in (current, previous) if k is not None and k.key_id == key_id), None)
    if key is None:
        raise ProtocolError(ErrorCode.UNKNOWN_SENDER_KEY, "no sender key with this key id")

    header = data[:GROUP_HEADER_LENGTH]
    sealed = data[GROUP_HEADER_LENGTH : GROUP_HEADER_LENGTH + sealed_length]
    signature = data[GROUP_HEADER_LENGTH + sealed_length :]
    associated_data = labels + header
    if not xeddsa.ed25519_verify(signature, key.signing_key, associated_data + sealed):
        raise ProtocolError(ErrorCode.INVALID_SIGNATURE, "group message signature does not verify")
    message_key = await _take_message_key(key, iteration)
    try:
        plaintext = await MessageAEAD.decrypt(sealed, message_key, associated_data)
    except AuthenticationFailedException as error:
        raise ProtocolError(ErrorCode.AUTHENTICATION_FAILED, "group message authentication failed") from error
    except DecryptionFailedException as error:
        raise ProtocolError(ErrorCode.DECRYPTION_FAILED, "group message did not decrypt") from error
    return _encode_record(current, previous), plaintext


# -- plaintexts -----------------------------------------------------------------------------------------


def _is_well_formed(text: str) -> bool:
    """No lone surrogates (a JavaScript string's isWellFormed)."""
    return not any(0xD800 <= ord(character) <= 0xDFFF for character in text)


def _is_valid_name(name: object) -> bool:
    """Section 22's name rule: 1 to 64 characters (code points), no control characters."""
    return (
        isinstance(name, str)
        and 1 <= len(name) <= GROUP_NAME_MAX_LENGTH
        and _is_well_formed(name)
        and _CONTROL_CHARACTER.search(name) is None
    )


def encode_group_text(text: str) -> bytes:
    """``0x01 || UTF-8 text``."""
    if not isinstance(text, str) or not _is_well_formed(text):
        raise _invalid_argument("text must be well-formed text")
    return bytes([GROUP_PLAINTEXT_TEXT]) + text.encode("utf-8")


def encode_group_settings(*, name: str) -> bytes:
    """``0x02 || UTF-8 JSON {"name": ...}``, byte for byte what JavaScript's JSON.stringify writes."""
    if not _is_valid_name(name):
        raise _invalid_argument(f"group name must be 1 to {GROUP_NAME_MAX_LENGTH} characters, no control characters")
    content = json.dumps({"name": name}, ensure_ascii=False, separators=(",", ":"))
    return bytes([GROUP_PLAINTEXT_SETTINGS]) + content.encode("utf-8")


@dataclass(frozen=True)
class GroupPlaintext:
    """A decoded group plaintext: ``type`` is "text" (``text``), "settings" (``name``) or "unknown"
    (``type_byte``: acknowledge it, show nothing)."""

    type: str
    text: str | None = None
    name: str | None = None
    type_byte: int | None = None


def _broken_plaintext(why: str) -> ProtocolError:
    return ProtocolError(ErrorCode.DECRYPTION_FAILED, f"group plaintext: {why}")


def _refuse_constant(value: str) -> None:
    raise ValueError(f"{value} is not JSON")


def decode_group_plaintext(plaintext: bytes) -> GroupPlaintext:
    """Reads a decrypted group plaintext, as decodeGroupPlaintext does.

    A known type whose content breaks section 22's rules, or an empty plaintext, is DECRYPTION_FAILED (a
    broken sender: drop it). Unknown fields of the settings are ignored. JSON is read as JSON.parse
    reads it: NaN and Infinity are refused, integers of any length accepted (as floats: only the name
    is used), deep nesting is not a crash.
    """
    if not isinstance(plaintext, bytes):
        raise _invalid_argument("plaintext must be bytes")
    if not plaintext:
        raise _broken_plaintext("empty")
    type_byte = plaintext[0]
    if type_byte not in (GROUP_PLAINTEXT_TEXT, GROUP_PLAINTEXT_SETTINGS):
        return GroupPlaintext(type="unknown", type_byte=type_byte)
    try:
        content = plaintext[1:].decode("utf-8")
    except UnicodeDecodeError as error:
        raise _broken_plaintext("not UTF-8") from error
    if type_byte == GROUP_PLAINTEXT_TEXT:
        return GroupPlaintext(type="text", text=content)
    try:
        settings = json.loads(content, parse_constant=_refuse_constant, parse_int=float)
    except (ValueError, RecursionError) as error:
        raise _broken_plaintext("settings are not JSON") from error
    if not isinstance(settings, dict) or not _is_valid_name(settings.get("name")):
        raise _broken_plaintext("settings do not hold a valid name")
    return GroupPlaintext(type="settings", name=settings["name"])
