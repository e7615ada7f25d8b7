"""The end-to-end encryption protocol of Secured Messenger (docs/PROTOCOL.md), Python side.

Built on the maintained PyPI implementations of the Signal specifications (``x3dh``, ``doubleratchet``,
``xeddsa``) configured with our parameter set (:mod:`.library`), plus our envelope wire format
(:mod:`.envelope`) and safety numbers (:mod:`.fingerprint`). Importable without Django.

Typical use::

    account = ProtocolAccount.create(one_time_prekeys=100)
    payload = account.registration_keys()                      # upload at registration
    session, out = await account.initiate_session(bundle, b"hi")  # out.kind, out.body -> server
    received = await account.receive(kind, body, session)     # routes prekey/message envelopes
    out = await received.session.encrypt(b"reply")

Linking a device (section 18, :mod:`.link`)::

    request = create_link_request(link_id)                     # new device: show request.code
    offer = await seal_identity_for_link(seed, code)           # existing device: send, show the code
    opening = open_link_offer(...)                             # new device: compare the codes, then
    seed = await opening.open()
"""

from .account import AcceptedSession, ProtocolAccount, ReceivedMessage, parse_bundle
from .constants import (
    KIND_MESSAGE,
    KIND_PREKEY,
    MAX_BODY_LENGTH,
    MAX_PLAINTEXT_BYTES,
    MAX_SKIP,
    MAX_STORED_SKIPPED_KEYS,
    WIRE_VERSION,
)
from .encoding import b64decode, b64encode
from .envelope import Envelope, OutgoingEnvelope, PrekeyHeader, RatchetMessage, encode_envelope, parse_envelope
from .errors import ErrorCode, ProtocolError
from .fingerprint import format_safety_number, identity_key_digits, safety_number
from .link import (
    LinkCode,
    LinkOffer,
    LinkOpening,
    LinkRequest,
    create_link_request,
    open_link_offer,
    parse_link_code,
    seal_identity_for_link,
)
from .session import Session

__all__ = [
    "KIND_MESSAGE",
    "KIND_PREKEY",
    "MAX_BODY_LENGTH",
    "MAX_PLAINTEXT_BYTES",
    "MAX_SKIP",
    "MAX_STORED_SKIPPED_KEYS",
    "WIRE_VERSION",
    "AcceptedSession",
    "Envelope",
    "ErrorCode",
    "LinkCode",
    "LinkOffer",
    "LinkOpening",
    "LinkRequest",
    "OutgoingEnvelope",
    "PrekeyHeader",
    "ProtocolAccount",
    "ProtocolError",
    "RatchetMessage",
    "ReceivedMessage",
    "Session",
    "b64decode",
    "b64encode",
    "create_link_request",
    "encode_envelope",
    "format_safety_number",
    "identity_key_digits",
    "open_link_offer",
    "parse_bundle",
    "parse_envelope",
    "parse_link_code",
    "safety_number",
    "seal_identity_for_link",
]
