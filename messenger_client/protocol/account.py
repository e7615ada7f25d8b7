"""Our side of X3DH: identity key, signed prekeys and one-time prekeys with ids, and session set-up.

:class:`ProtocolAccount` wraps the ``x3dh`` library's ``BaseState`` (configured in :mod:`.library`) and adds
what the library leaves to applications and the server protocol needs:

* integer key ids for the signed prekey and each one-time prekey, never reused for the account (the
  library identifies prekeys by public key; the wire format carries ids);
* the server's bundle/registration formats (standard base64 of raw 32-byte keys);
* deletion of a one-time prekey only once an initial message that used it decrypted (a forged one must not
  burn it);
* rejection of an initial message whose ephemeral key already founded a session (a replay).

The whole account round-trips through :meth:`to_json` / :meth:`from_json`. It holds private keys: store it
like a password database, never log it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import x3dh
import xeddsa
from doubleratchet import EncryptedMessage
from x3dh.identity_key_pair import IdentityKeyPair, IdentityKeyPairSeed

from .constants import (
    KEY_LENGTH,
    KIND_MESSAGE,
    KIND_PREKEY,
    MAX_KEY_ID,
    MAX_ONE_TIME_PREKEYS_PER_BATCH,
    MAX_SKIP,
    MIN_KEY_ID,
    SIGNATURE_LENGTH,
)
from .encoding import b64decode, b64encode
from .envelope import Envelope, OutgoingEnvelope, parse_envelope
from .errors import ErrorCode, ProtocolError
from .library import DOUBLE_RATCHET_PARAMETERS, X3DH_PARAMETERS, DoubleRatchet, X3DHState
from .session import PendingPrekey, Session, check_plaintext, library_header, raise_translated

ACCOUNT_STATE_VERSION = 1


@dataclass(frozen=True)
class ParsedBundle:
    identity_key: bytes
    signed_prekey_id: int
    signed_prekey: bytes
    signed_prekey_signature: bytes
    one_time_prekey_id: int | None
    one_time_prekey: bytes | None


@dataclass(frozen=True)
class AcceptedSession:
    """Result of :meth:`ProtocolAccount.accept_initial_message`."""

    session: Session
    plaintext: bytes
    consumed_one_time_prekey_id: int | None
    remote_identity_key: bytes


@dataclass(frozen=True)
class ReceivedMessage:
    """Result of :meth:`ProtocolAccount.receive`: the session to store (maybe new) and the plaintext."""

    session: Session
    plaintext: bytes
    new_session: bool
    consumed_one_time_prekey_id: int | None


def _key_id(value: object, what: str, code: ErrorCode) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not MIN_KEY_ID <= value <= MAX_KEY_ID:
        raise ProtocolError(code, f"{what} is not a valid key id")
    return value


def parse_bundle(bundle: Any) -> ParsedBundle:
    """Validates a bundle as served by ``POST /api/v1/keys/bundle`` ``{email}``."""
    code = ErrorCode.INVALID_BUNDLE
    if not isinstance(bundle, dict) or not isinstance(bundle.get("signed_prekey"), dict):
        raise ProtocolError(code, "bundle must be an object with a signed_prekey")
    spk = bundle["signed_prekey"]
    opk = bundle.get("one_time_prekey")
    if opk is not None and not isinstance(opk, dict):
        raise ProtocolError(code, "one_time_prekey must be an object or null")
    return ParsedBundle(
        identity_key=b64decode(bundle.get("identity_key"), length=KEY_LENGTH, code=code, what="identity_key"),
        signed_prekey_id=_key_id(spk.get("key_id"), "signed_prekey.key_id", code),
        signed_prekey=b64decode(spk.get("public_key"), length=KEY_LENGTH, code=code, what="signed_prekey"),
        signed_prekey_signature=b64decode(
            spk.get("signature"), length=SIGNATURE_LENGTH, code=code, what="signed_prekey.signature"
        ),
        one_time_prekey_id=None if opk is None else _key_id(opk.get("key_id"), "one_time_prekey.key_id", code),
        one_time_prekey=None
        if opk is None
        else b64decode(opk.get("public_key"), length=KEY_LENGTH, code=code, what="one_time_prekey"),
    )


def _check_identity_key(identity_key: bytes) -> None:
    """Rejects identity keys that are not valid, torsion-free Ed25519 points (libsodium's conversion check)."""
    try:
        xeddsa.ed25519_pub_to_curve25519_pub(identity_key)
    except Exception as error:
        raise ProtocolError(ErrorCode.INVALID_KEY, "identity key is not a valid Ed25519 public key") from error


class ProtocolAccount:
    def __init__(self) -> None:
        self._state: X3DHState
        self._signed_prekey_ids: dict[int, bytes] = {}  # current and previous signed prekey: id -> public key
        self._one_time_prekey_ids: dict[int, bytes] = {}  # unused one-time prekeys: id -> public key
        self._next_signed_prekey_id = MIN_KEY_ID
        self._next_one_time_prekey_id = MIN_KEY_ID
        # Ephemeral keys that founded a session, per signed prekey id: forgotten together with the signed
        # prekey, after which no initial message naming it can be accepted anyway.
        self._used_ephemeral_keys: dict[int, set[bytes]] = {}

    # -- creation and keys --------------------------------------------------------------------------------

    @classmethod
    def create(cls, *, identity_seed: bytes | None = None, one_time_prekeys: int = 0) -> ProtocolAccount:
        """A new account: identity key (Ed25519 seed), signed prekey with id 1, optional one-time prekeys."""
        self = cls()
        seed = identity_seed if identity_seed is not None else secrets.token_bytes(KEY_LENGTH)
        if len(seed) != KEY_LENGTH:
            raise ProtocolError(ErrorCode.INVALID_ARGUMENT, "identity seed must be 32 bytes")
        self._state = X3DHState.create(identity_key_pair=IdentityKeyPairSeed(seed), **X3DH_PARAMETERS)
        self._register_current_signed_prekey()
        if one_time_prekeys:
            self.generate_one_time_prekeys(one_time_prekeys)
        return self

    def _check_signed_prekey_id_left(self) -> None:
        if self._next_signed_prekey_id > MAX_KEY_ID:
            raise ProtocolError(ErrorCode.KEY_ID_EXHAUSTED, "signed prekey ids are used up for this account")

    def _register_current_signed_prekey(self) -> None:
        self._check_signed_prekey_id_left()
        key_id = self._next_signed_prekey_id
        self._next_signed_prekey_id += 1
        self._signed_prekey_ids[key_id] = self._state.bundle.signed_pre_key
        # Keep ids only for the keys the library still holds (current and previous).
        live = {self._state.bundle.signed_pre_key, self._state.old_signed_pre_key}
        for stale in [i for i, pub in self._signed_prekey_ids.items() if pub not in live]:
            del self._signed_prekey_ids[stale]
            self._used_ephemeral_keys.pop(stale, None)

    @classmethod
    def from_linked_seed(cls, identity_seed: bytes, *, one_time_prekeys: int) -> ProtocolAccount:
        """A new device of an existing account (docs/PROTOCOL.md section 18): the identity seed received
        through a link, with this device's own signed prekey (id 1) and one-time prekeys. Key ids are per
        device, so they start at 1 like a new account's. The caller checks that :attr:`identity_key` is the
        account's before using it."""
        return cls.create(identity_seed=identity_seed, one_time_prekeys=one_time_prekeys)

    @property
    def identity_key(self) -> bytes:
        return self._state.bundle.identity_key

    @property
    def identity_seed(self) -> bytes:
        """The 32-byte Ed25519 seed of the identity key: the secret a device hands to a new device of the
        account when linking it (:func:`.link.seal_identity_for_link`), and nothing else. Never print or
        log it."""
        pair = IdentityKeyPair.from_model(self._state.model.identity_key)
        if not isinstance(pair, IdentityKeyPairSeed):
            raise ProtocolError(ErrorCode.INVALID_ARGUMENT, "this identity key has no seed to hand over")
        return pair.seed

    @property
    def signed_prekey_id(self) -> int:
        current = self._state.bundle.signed_pre_key
        return next(i for i, pub in self._signed_prekey_ids.items() if pub == current)

    def signed_prekey(self) -> dict[str, Any]:
        """The current signed prekey in the server's form ``{key_id, public_key, signature}``."""
        bundle = self._state.bundle
        return {
            "key_id": self.signed_prekey_id,
            "public_key": b64encode(bundle.signed_pre_key),
            "signature": b64encode(bundle.signed_pre_key_sig),
        }

    def rotate_signed_prekey(self) -> dict[str, Any]:
        """New signed prekey with a new id; the previous one stays usable until the next rotation.
        The id is checked first: once the ids are used up, the library must not rotate to a key
        that could never be published (the current one stays)."""
        self._check_signed_prekey_id_left()
        self._state.rotate_signed_pre_key()
        self._register_current_signed_prekey()
        return self.signed_prekey()

    def generate_one_time_prekeys(self, count: int) -> list[dict[str, Any]]:
        """Generates ``count`` one-time prekeys with fresh ids; returns their server form for upload."""
        if not 1 <= count <= MAX_ONE_TIME_PREKEYS_PER_BATCH:
            raise ProtocolError(ErrorCode.INVALID_ARGUMENT, f"count must be in [1, {MAX_ONE_TIME_PREKEYS_PER_BATCH}]")
        if self._next_one_time_prekey_id + count - 1 > MAX_KEY_ID:
            raise ProtocolError(ErrorCode.KEY_ID_EXHAUSTED, "one-time prekey ids are used up for this account")
        before = set(self._state.bundle.pre_keys)
        self._state.generate_pre_keys(count)
        new_keys = sorted(set(self._state.bundle.pre_keys) - before)
        uploaded = []
        for public_key in new_keys:
            key_id = self._next_one_time_prekey_id
            self._next_one_time_prekey_id += 1
            self._one_time_prekey_ids[key_id] = public_key
            uploaded.append({"key_id": key_id, "public_key": b64encode(public_key)})
        return uploaded

    def one_time_prekeys(self) -> list[dict[str, Any]]:
        """The unused one-time prekeys, server form, by id."""
        return [
            {"key_id": key_id, "public_key": b64encode(pub)}
            for key_id, pub in sorted(self._one_time_prekey_ids.items())
        ]

    def registration_keys(self) -> dict[str, Any]:
        """The key part of the registration request (public keys only)."""
        return {
            "identity_key": b64encode(self.identity_key),
            "signed_prekey": self.signed_prekey(),
            "one_time_prekeys": self.one_time_prekeys(),
        }

    def bundle(self, one_time_prekey_id: int | None = None) -> dict[str, Any]:
        """The bundle the server would hand out for us, with the given one-time prekey (or none)."""
        opk = None
        if one_time_prekey_id is not None:
            opk = {"key_id": one_time_prekey_id, "public_key": b64encode(self._one_time_prekey_ids[one_time_prekey_id])}
        return {
            "identity_key": b64encode(self.identity_key),
            "signed_prekey": self.signed_prekey(),
            "one_time_prekey": opk,
        }

    # -- initiating ---------------------------------------------------------------------------------------

    async def initiate_session(self, bundle: Any, plaintext: bytes) -> tuple[Session, OutgoingEnvelope]:
        """X3DH as initiator from a peer's bundle, and the first (prekey) message carrying ``plaintext``.

        The library encrypts the first message as part of creating the ratchet, hence the plaintext here.
        Compare ``session.remote_identity_key`` with the key known for the contact (the server could
        substitute keys).
        """
        check_plaintext(plaintext)
        parsed = parse_bundle(bundle)
        # Signature first, before any DH with keys the server may have substituted.
        if not xeddsa.ed25519_verify(parsed.signed_prekey_signature, parsed.identity_key, parsed.signed_prekey):
            raise ProtocolError(ErrorCode.INVALID_SIGNATURE, "signed prekey signature does not verify")
        _check_identity_key(parsed.identity_key)
        library_bundle = x3dh.Bundle(
            identity_key=parsed.identity_key,
            signed_pre_key=parsed.signed_prekey,
            signed_pre_key_sig=parsed.signed_prekey_signature,
            pre_keys=frozenset() if parsed.one_time_prekey is None else frozenset({parsed.one_time_prekey}),
        )
        try:
            shared_secret, associated_data, header = await self._state.get_shared_secret_active(
                library_bundle, require_pre_key=False
            )
            ratchet, encrypted = await DoubleRatchet.encrypt_initial_message(
                shared_secret=shared_secret,
                recipient_ratchet_pub=parsed.signed_prekey,
                message=plaintext,
                associated_data=associated_data,
                **DOUBLE_RATCHET_PARAMETERS,
            )
        except x3dh.KeyAgreementException as error:
            raise ProtocolError(ErrorCode.INVALID_SIGNATURE, "key agreement failed") from error
        except ProtocolError:
            raise
        except Exception as error:
            raise ProtocolError(ErrorCode.INVALID_KEY, "a key in this bundle is invalid") from error
        session = Session(
            role="initiator",
            local_identity_key=self.identity_key,
            remote_identity_key=parsed.identity_key,
            associated_data=associated_data,
            initial_ephemeral_key=header.ephemeral_key,
            pending_prekey=PendingPrekey(parsed.signed_prekey_id, parsed.one_time_prekey_id),
            ratchet=ratchet,
        )
        return session, session._envelope_for(encrypted.header, encrypted.ciphertext)

    # -- responding ---------------------------------------------------------------------------------------

    async def accept_initial_message(
        self, envelope: Envelope, *, require_one_time_prekey: bool = False
    ) -> AcceptedSession:
        """X3DH as responder from a "prekey" envelope, decrypting it.

        Raises ProtocolError and changes nothing on failure. On success the one-time prekey it used is
        deleted and its ephemeral key remembered, so the same initial message can never found a second
        session. Compare ``remote_identity_key`` with the key known for the sender (the server could
        substitute keys).
        """
        header = envelope.prekey
        if envelope.kind != KIND_PREKEY or header is None:
            raise ProtocolError(ErrorCode.INVALID_ARGUMENT, "only a 'prekey' envelope can start a session")
        if any(header.ephemeral_key in keys for keys in self._used_ephemeral_keys.values()):
            raise ProtocolError(ErrorCode.REPLAYED_INITIAL_MESSAGE, "this ephemeral key already founded a session")
        signed_prekey = self._signed_prekey_ids.get(header.signed_prekey_id)
        if signed_prekey is None:
            raise ProtocolError(ErrorCode.UNKNOWN_SIGNED_PREKEY, "the signed prekey of this message is not available")
        one_time_prekey = None
        if header.one_time_prekey_id is None:
            if require_one_time_prekey:
                raise ProtocolError(ErrorCode.ONE_TIME_PREKEY_REQUIRED, "initial message did not use a one-time prekey")
        else:
            one_time_prekey = self._one_time_prekey_ids.get(header.one_time_prekey_id)
            if one_time_prekey is None:
                raise ProtocolError(
                    ErrorCode.UNKNOWN_ONE_TIME_PREKEY, "the one-time prekey of this message is not available"
                )
        _check_identity_key(header.identity_key)
        # The specification bounds skipping on the (empty) previous chain too; the library does not.
        if envelope.message.previous_chain_length > MAX_SKIP:
            raise ProtocolError(ErrorCode.TOO_MANY_SKIPPED_MESSAGES, f"more than {MAX_SKIP} skipped messages")

        try:
            shared_secret, associated_data, signed_prekey_pair = await self._state.get_shared_secret_passive(
                x3dh.Header(
                    identity_key=header.identity_key,
                    ephemeral_key=header.ephemeral_key,
                    signed_pre_key=signed_prekey,
                    pre_key=one_time_prekey,
                ),
                require_pre_key=False,
            )
            ratchet, plaintext = await DoubleRatchet.decrypt_initial_message(
                shared_secret=shared_secret,
                own_ratchet_priv=signed_prekey_pair.priv,
                message=EncryptedMessage(
                    header=library_header(envelope.message), ciphertext=envelope.message.ciphertext
                ),
                associated_data=associated_data,
                **DOUBLE_RATCHET_PARAMETERS,
            )
        except x3dh.KeyAgreementException as error:
            raise ProtocolError(ErrorCode.UNKNOWN_SIGNED_PREKEY, "key agreement failed") from error
        except Exception as error:
            raise_translated(error)

        # Success only: now the one-time prekey is spent and the ephemeral key may never be used again.
        if header.one_time_prekey_id is not None:
            self._state.delete_pre_key(one_time_prekey)
            del self._one_time_prekey_ids[header.one_time_prekey_id]
        self._used_ephemeral_keys.setdefault(header.signed_prekey_id, set()).add(header.ephemeral_key)
        session = Session(
            role="responder",
            local_identity_key=self.identity_key,
            remote_identity_key=header.identity_key,
            associated_data=associated_data,
            initial_ephemeral_key=header.ephemeral_key,
            pending_prekey=None,
            ratchet=ratchet,
        )
        return AcceptedSession(session, plaintext, header.one_time_prekey_id, header.identity_key)

    async def receive(self, kind: str, body: str, session: Session | None = None) -> ReceivedMessage:
        """Routes an incoming envelope: an existing session's message, or a new session from a prekey message.

        ``session`` is the current session with the sender, if any. The returned session must be stored
        (it is ``session`` itself, advanced, unless ``new_session``), and the account too when
        ``new_session`` (a one-time prekey was consumed).
        """
        envelope = parse_envelope(kind, body)
        if envelope.kind == KIND_MESSAGE or (session is not None and session.is_initial_message_for_session(envelope)):
            if session is None:
                raise ProtocolError(ErrorCode.SESSION_MISMATCH, "no session with this sender")
            return ReceivedMessage(session, await session.decrypt(envelope), False, None)
        accepted = await self.accept_initial_message(envelope)
        return ReceivedMessage(accepted.session, accepted.plaintext, True, accepted.consumed_one_time_prekey_id)

    # -- serialisation ------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "version": ACCOUNT_STATE_VERSION,
            "x3dh": self._state.json,
            "signed_prekey_ids": {str(i): b64encode(pub) for i, pub in self._signed_prekey_ids.items()},
            "one_time_prekey_ids": {str(i): b64encode(pub) for i, pub in self._one_time_prekey_ids.items()},
            "next_signed_prekey_id": self._next_signed_prekey_id,
            "next_one_time_prekey_id": self._next_one_time_prekey_id,
            "used_ephemeral_keys": {
                str(i): sorted(b64encode(key) for key in keys) for i, keys in self._used_ephemeral_keys.items()
            },
        }

    @classmethod
    def from_json(cls, data: Any) -> ProtocolAccount:
        if not isinstance(data, dict) or data.get("version") != ACCOUNT_STATE_VERSION:
            raise ProtocolError(ErrorCode.INVALID_ARGUMENT, "account state: bad version")
        self = cls()
        # BaseState (not State): loading never rotates or publishes anything behind our back.
        self._state, _ = X3DHState.from_json(data["x3dh"], **X3DH_PARAMETERS)
        self._signed_prekey_ids = {int(i): b64decode(pub) for i, pub in data["signed_prekey_ids"].items()}
        self._one_time_prekey_ids = {int(i): b64decode(pub) for i, pub in data["one_time_prekey_ids"].items()}
        self._next_signed_prekey_id = int(data["next_signed_prekey_id"])
        self._next_one_time_prekey_id = int(data["next_one_time_prekey_id"])
        self._used_ephemeral_keys = {
            int(i): {b64decode(key) for key in keys} for i, keys in data["used_ephemeral_keys"].items()
        }
        return self
