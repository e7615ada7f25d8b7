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

Groups (section 22, :mod:`.senderkey`): ``create_sender_key``, ``sender_key_distribution`` to each member
device, ``encrypt_group_message``; on receipt ``parse_sender_key_distribution`` -> ``received_sender_keys``,
``decrypt_group_message``, ``decode_group_plaintext``.
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
from .senderkey import (
    GroupPlaintext,
    SenderKeyDistribution,
    create_sender_key,
    decode_group_plaintext,
    decrypt_group_message,
    encode_group_settings,
    encode_group_text,
    encrypt_group_message,
    parse_sender_key_distribution,
    received_sender_keys,
    sender_key_distribution,
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
    "GroupPlaintext",
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
    "SenderKeyDistribution",
    "Session",
    "b64decode",
    "b64encode",
    "create_link_request",
    "create_sender_key",
    "decode_group_plaintext",
    "decrypt_group_message",
    "encode_envelope",
    "encode_group_settings",
    "encode_group_text",
    "encrypt_group_message",
    "format_safety_number",
    "identity_key_digits",
    "open_link_offer",
    "parse_bundle",
    "parse_envelope",
    "parse_link_code",
    "parse_sender_key_distribution",
    "received_sender_keys",
    "safety_number",
    "seal_identity_for_link",
    "sender_key_distribution",
]
