"""A Double Ratchet session with one peer, on top of the configured ``doubleratchet`` library.

Unlike the JavaScript functions, a :class:`Session` is a mutable object (the library's state is), but it
has the same guarantees: a failed :meth:`Session.decrypt` changes nothing (the library works on a deep copy
and commits on success; our own fields are updated after it), a replayed message is rejected, and
:meth:`Session.to_json` / :meth:`Session.from_json` round-trip through JSON.

Persist the session after every :meth:`encrypt` *before* sending, and after every successful
:meth:`decrypt`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

from doubleratchet import (
    AuthenticationFailedException,
    DecryptionFailedException,
    DoSProtectionException,
    DuplicateMessageException,
    EncryptedMessage,
    Header,
)
from xeddsa import XEdDSAException

from .constants import KEY_LENGTH, KIND_MESSAGE, KIND_PREKEY, MAX_MESSAGE_NUMBER, MAX_PLAINTEXT_BYTES, MAX_SKIP
from .encoding import b64decode, b64encode
from .envelope import Envelope, OutgoingEnvelope, PrekeyHeader, RatchetMessage, encode_envelope
from .errors import ErrorCode, ProtocolError
from .library import DOUBLE_RATCHET_PARAMETERS, DoubleRatchet

SESSION_STATE_VERSION = 1


@dataclass(frozen=True)
class PendingPrekey:
    """Initiator only: the prekey ids repeated in every message until the responder's first reply."""

    signed_prekey_id: int
    one_time_prekey_id: int | None


def library_header(message: RatchetMessage) -> Header:
    return Header(
        ratchet_pub=message.ratchet_key,
        previous_sending_chain_length=message.previous_chain_length,
        sending_chain_length=message.message_number,
    )


def translate_library_error(error: Exception) -> ProtocolError | None:
    """Maps the libraries' exceptions to our stable error codes; None for anything unexpected (a bug)."""
    if isinstance(error, ProtocolError):
        return error
    if isinstance(error, AuthenticationFailedException):
        return ProtocolError(ErrorCode.AUTHENTICATION_FAILED, "message authentication failed")
    if isinstance(error, DecryptionFailedException):
        return ProtocolError(ErrorCode.DECRYPTION_FAILED, "ciphertext did not decrypt")
    if isinstance(error, DoSProtectionException):
        return ProtocolError(ErrorCode.TOO_MANY_SKIPPED_MESSAGES, f"more than {MAX_SKIP} skipped messages")
    if isinstance(error, DuplicateMessageException):
        return ProtocolError(ErrorCode.DUPLICATE_MESSAGE, "message was already received or its key was discarded")
    if isinstance(error, ValueError | XEdDSAException):
        # cryptography raises ValueError, xeddsa XEdDSAException, for a low-order X25519 key.
        return ProtocolError(ErrorCode.INVALID_KEY, "a key in this message is invalid")
    return None


def raise_translated(error: Exception) -> NoReturn:
    translated = translate_library_error(error)
    if translated is None:
        raise error
    raise translated from error


class Session:
    def __init__(
        self,
        *,
        role: str,
        local_identity_key: bytes,
        remote_identity_key: bytes,
        associated_data: bytes,
        initial_ephemeral_key: bytes,
        pending_prekey: PendingPrekey | None,
        ratchet: DoubleRatchet,
    ) -> None:
        self.role = role
        self.local_identity_key = local_identity_key
        self.remote_identity_key = remote_identity_key
        self.associated_data = associated_data
        self.initial_ephemeral_key = initial_ephemeral_key
        self.pending_prekey = pending_prekey
        self._ratchet = ratchet

    # -- sending ------------------------------------------------------------------------------------------

    def _envelope_for(self, header: Header, ciphertext: bytes) -> OutgoingEnvelope:
        prekey = None
        if self.pending_prekey is not None:
            prekey = PrekeyHeader(
                identity_key=self.local_identity_key,
                ephemeral_key=self.initial_ephemeral_key,
                signed_prekey_id=self.pending_prekey.signed_prekey_id,
                one_time_prekey_id=self.pending_prekey.one_time_prekey_id,
            )
        return encode_envelope(
            Envelope(
                kind=KIND_PREKEY if prekey else KIND_MESSAGE,
                prekey=prekey,
                message=RatchetMessage(
                    ratchet_key=header.ratchet_pub,
                    message_number=header.sending_chain_length,
                    previous_chain_length=header.previous_sending_chain_length,
                    ciphertext=ciphertext,
                ),
            )
        )

    async def encrypt(self, plaintext: bytes) -> OutgoingEnvelope:
        """Encrypts one message; persist the session before sending the returned envelope."""
        check_plaintext(plaintext)
        if self._ratchet.sending_chain_length >= MAX_MESSAGE_NUMBER:
            raise ProtocolError(ErrorCode.CHAIN_EXHAUSTED, "sending chain is exhausted; start a new session")
        encrypted = await self._ratchet.encrypt_message(plaintext, self.associated_data)
        return self._envelope_for(encrypted.header, encrypted.ciphertext)

    # -- receiving ----------------------------------------------------------------------------------------

    def is_initial_message_for_session(self, envelope: Envelope) -> bool:
        """True for a repeated initial message of the X3DH run that founded this (responder) session."""
        return (
            envelope.kind == KIND_PREKEY
            and envelope.prekey is not None
            and self.role == "responder"
            and envelope.prekey.ephemeral_key == self.initial_ephemeral_key
            and envelope.prekey.identity_key == self.remote_identity_key
        )

    def _check_skip_bound(self, header: Header) -> None:
        """Enforces the specification's MAX_SKIP on the *previous* chain too.

        The library only warns (and skips nothing) when a ratchet step would skip more than its threshold on
        the previous chain; the specification, and the JavaScript client, reject the message instead.
        """
        model = self._ratchet.model
        if (header.ratchet_pub, header.sending_chain_length) in {
            (key.ratchet_pub, key.index) for key in model.skipped_message_keys
        }:
            return
        if header.ratchet_pub != model.diffie_hellman_ratchet.other_ratchet_pub:
            received = self._ratchet.receiving_chain_length or 0
            if header.previous_sending_chain_length > received + MAX_SKIP:
                raise ProtocolError(ErrorCode.TOO_MANY_SKIPPED_MESSAGES, f"more than {MAX_SKIP} skipped messages")

    async def decrypt(self, envelope: Envelope) -> bytes:
        """Decrypts a message of this session. On failure raises ProtocolError and changes nothing."""
        if envelope.kind == KIND_PREKEY and not self.is_initial_message_for_session(envelope):
            raise ProtocolError(ErrorCode.SESSION_MISMATCH, "this prekey message does not belong to this session")
        header = library_header(envelope.message)
        self._check_skip_bound(header)
        try:
            plaintext = await self._ratchet.decrypt_message(
                EncryptedMessage(header=header, ciphertext=envelope.message.ciphertext), self.associated_data
            )
        except Exception as error:
            raise_translated(error)
        # Whatever decrypts in an initiator's session came from the responder: stop sending the X3DH header.
        self.pending_prekey = None
        return plaintext

    # -- serialisation ------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "version": SESSION_STATE_VERSION,
            "role": self.role,
            "local_identity_key": b64encode(self.local_identity_key),
            "remote_identity_key": b64encode(self.remote_identity_key),
            "associated_data": b64encode(self.associated_data),
            "initial_ephemeral_key": b64encode(self.initial_ephemeral_key),
            "pending_prekey": None
            if self.pending_prekey is None
            else {
                "signed_prekey_id": self.pending_prekey.signed_prekey_id,
                "one_time_prekey_id": self.pending_prekey.one_time_prekey_id,
            },
            "ratchet": self._ratchet.json,
        }

    @classmethod
    def from_json(cls, data: Any) -> Session:
        code = ErrorCode.INVALID_SESSION_STATE
        if not isinstance(data, dict) or data.get("version") != SESSION_STATE_VERSION:
            raise ProtocolError(code, "session state: bad version")
        if data.get("role") not in ("initiator", "responder"):
            raise ProtocolError(code, "session state: bad role")
        pending = data.get("pending_prekey")
        try:
            ratchet = DoubleRatchet.from_json(data["ratchet"], **DOUBLE_RATCHET_PARAMETERS)
        except Exception as error:
            raise ProtocolError(code, "session state: bad ratchet") from error
        return cls(
            role=data["role"],
            local_identity_key=b64decode(data.get("local_identity_key"), length=KEY_LENGTH, code=code),
            remote_identity_key=b64decode(data.get("remote_identity_key"), length=KEY_LENGTH, code=code),
            associated_data=b64decode(data.get("associated_data"), length=2 * KEY_LENGTH, code=code),
            initial_ephemeral_key=b64decode(data.get("initial_ephemeral_key"), length=KEY_LENGTH, code=code),
            pending_prekey=None
            if pending is None
            else PendingPrekey(pending["signed_prekey_id"], pending["one_time_prekey_id"]),
            ratchet=ratchet,
        )


def check_plaintext(plaintext: object) -> None:
    if not isinstance(plaintext, bytes):
        raise ProtocolError(ErrorCode.INVALID_ARGUMENT, "plaintext must be bytes")
    if len(plaintext) > MAX_PLAINTEXT_BYTES:
        raise ProtocolError(ErrorCode.PLAINTEXT_TOO_LARGE, f"plaintext exceeds {MAX_PLAINTEXT_BYTES} bytes")
