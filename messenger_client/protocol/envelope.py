"""Envelope wire format version 1 (docs/PROTOCOL.md, "Envelope"), identical to static/js/crypto/envelope.js.

The server envelope's ``body`` is the standard padded base64 of::

    version u8 = 1 | type u8 (1 = prekey, 2 = message)
    [type 1 only]  IK_A 32 | EK_A 32 | signed prekey id u32 BE | flags u8 (bit 0: one-time prekey id follows)
                   | [one-time prekey id u32 BE]
    ratchet key 32 | n u32 BE | pn u32 BE | AES-256-CBC ciphertext (16k bytes, k >= 1) | HMAC-SHA-256 tag (32)

Parsing is strict and raises ProtocolError before any cryptography runs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .constants import (
    AES_BLOCK_LENGTH,
    KEY_LENGTH,
    KIND_MESSAGE,
    KIND_PREKEY,
    MAC_LENGTH,
    MAX_BODY_LENGTH,
    MAX_KEY_ID,
    MAX_MESSAGE_NUMBER,
    MIN_KEY_ID,
    WIRE_VERSION,
)
from .encoding import b64decode, b64encode
from .errors import ErrorCode, ProtocolError

TYPE_PREKEY = 0x01
TYPE_MESSAGE = 0x02
FLAG_ONE_TIME_PREKEY = 0x01


@dataclass(frozen=True)
class PrekeyHeader:
    """The X3DH part of an initial message."""

    identity_key: bytes  # IK_A, Ed25519
    ephemeral_key: bytes  # EK_A, X25519
    signed_prekey_id: int
    one_time_prekey_id: int | None


@dataclass(frozen=True)
class RatchetMessage:
    """The Double Ratchet part of every message."""

    ratchet_key: bytes
    message_number: int  # n
    previous_chain_length: int  # pn
    ciphertext: bytes  # AES-CBC ciphertext || HMAC tag


@dataclass(frozen=True)
class Envelope:
    kind: str  # "prekey" or "message"
    prekey: PrekeyHeader | None  # present exactly when kind is "prekey"
    message: RatchetMessage


@dataclass(frozen=True)
class OutgoingEnvelope:
    """What goes into the server envelope: ``{"type": "send", ..., "kind": kind, "body": body}``."""

    kind: str
    body: str


def _is_key_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and MIN_KEY_ID <= value <= MAX_KEY_ID


def _is_sealed_length(length: int) -> bool:
    return length >= AES_BLOCK_LENGTH + MAC_LENGTH and (length - MAC_LENGTH) % AES_BLOCK_LENGTH == 0


def encode_envelope(envelope: Envelope) -> OutgoingEnvelope:
    message = envelope.message

    def invalid(what: str) -> ProtocolError:
        return ProtocolError(ErrorCode.INVALID_ARGUMENT, f"cannot encode envelope: bad {what}")

    if len(message.ratchet_key) != KEY_LENGTH:
        raise invalid("ratchet_key")
    if not 0 <= message.message_number <= MAX_MESSAGE_NUMBER:
        raise invalid("message_number")
    if not 0 <= message.previous_chain_length <= MAX_MESSAGE_NUMBER:
        raise invalid("previous_chain_length")
    if not _is_sealed_length(len(message.ciphertext)):
        raise invalid("ciphertext")
    ratchet_part = (
        message.ratchet_key
        + struct.pack(">II", message.message_number, message.previous_chain_length)
        + message.ciphertext
    )
    if envelope.kind == KIND_PREKEY:
        header = envelope.prekey
        if header is None or not _is_key_id(header.signed_prekey_id):
            raise invalid("signed_prekey_id")
        if len(header.identity_key) != KEY_LENGTH or len(header.ephemeral_key) != KEY_LENGTH:
            raise invalid("prekey header keys")
        data = bytes([WIRE_VERSION, TYPE_PREKEY]) + header.identity_key + header.ephemeral_key
        data += struct.pack(">I", header.signed_prekey_id)
        if header.one_time_prekey_id is None:
            data += bytes([0])
        else:
            if not _is_key_id(header.one_time_prekey_id):
                raise invalid("one_time_prekey_id")
            data += bytes([FLAG_ONE_TIME_PREKEY]) + struct.pack(">I", header.one_time_prekey_id)
        data += ratchet_part
    elif envelope.kind == KIND_MESSAGE:
        if envelope.prekey is not None:
            raise invalid("prekey (a 'message' envelope carries no X3DH header)")
        data = bytes([WIRE_VERSION, TYPE_MESSAGE]) + ratchet_part
    else:
        raise ProtocolError(ErrorCode.KIND_MISMATCH, "unknown envelope kind")
    body = b64encode(data)
    if len(body) > MAX_BODY_LENGTH:
        raise ProtocolError(ErrorCode.BODY_TOO_LARGE, "envelope body is too large")
    return OutgoingEnvelope(kind=envelope.kind, body=body)


class _Reader:
    def __init__(self, data: bytes, offset: int) -> None:
        self._data = data
        self.offset = offset

    def take(self, length: int) -> bytes:
        if self.offset + length > len(self._data):
            raise ProtocolError(ErrorCode.MALFORMED_ENVELOPE, "envelope body is truncated")
        part = self._data[self.offset : self.offset + length]
        self.offset += length
        return part

    def take_u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def rest(self) -> bytes:
        return self._data[self.offset :]


def parse_envelope(kind: object, body: object) -> Envelope:
    """Parses a server envelope's ``kind`` and ``body``; raises ProtocolError on anything malformed."""
    if kind not in (KIND_PREKEY, KIND_MESSAGE):
        raise ProtocolError(ErrorCode.KIND_MISMATCH, "unknown envelope kind")
    if not isinstance(body, str):
        raise ProtocolError(ErrorCode.MALFORMED_ENVELOPE, "body must be a string")
    if len(body) > MAX_BODY_LENGTH:
        raise ProtocolError(ErrorCode.BODY_TOO_LARGE, "envelope body is too large")
    data = b64decode(body, code=ErrorCode.MALFORMED_ENVELOPE, what="envelope body")
    if len(data) < 2:
        raise ProtocolError(ErrorCode.MALFORMED_ENVELOPE, "envelope body is truncated")
    if data[0] != WIRE_VERSION:
        raise ProtocolError(ErrorCode.UNSUPPORTED_VERSION, "unsupported envelope version")
    if data[1] != (TYPE_PREKEY if kind == KIND_PREKEY else TYPE_MESSAGE):
        raise ProtocolError(ErrorCode.KIND_MISMATCH, "envelope kind does not match its body")

    reader = _Reader(data, 2)
    prekey = None
    if kind == KIND_PREKEY:
        identity_key = reader.take(KEY_LENGTH)
        ephemeral_key = reader.take(KEY_LENGTH)
        signed_prekey_id = reader.take_u32()
        flags = reader.take(1)[0]
        if flags & ~FLAG_ONE_TIME_PREKEY:
            raise ProtocolError(ErrorCode.MALFORMED_ENVELOPE, "reserved flag bits are set")
        one_time_prekey_id = reader.take_u32() if flags & FLAG_ONE_TIME_PREKEY else None
        if not _is_key_id(signed_prekey_id):
            raise ProtocolError(ErrorCode.MALFORMED_ENVELOPE, "signed prekey id is out of range")
        if one_time_prekey_id is not None and not _is_key_id(one_time_prekey_id):
            raise ProtocolError(ErrorCode.MALFORMED_ENVELOPE, "one-time prekey id is out of range")
        prekey = PrekeyHeader(identity_key, ephemeral_key, signed_prekey_id, one_time_prekey_id)

    ratchet_key = reader.take(KEY_LENGTH)
    message_number = reader.take_u32()
    previous_chain_length = reader.take_u32()
    ciphertext = reader.rest()
    if not _is_sealed_length(len(ciphertext)):
        raise ProtocolError(ErrorCode.MALFORMED_ENVELOPE, "ciphertext has an impossible length")
    return Envelope(
        kind=str(kind),
        prekey=prekey,
        message=RatchetMessage(ratchet_key, message_number, previous_chain_length, ciphertext),
    )
