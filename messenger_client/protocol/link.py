"""Linking a device (docs/PROTOCOL.md section 18), the same functions as static/js/crypto/link.js.

The existing device E hands the account's identity seed to the new device N through the server, which
must not be able to read it::

    N: create_link_request(link_id)          -> e_N, link code "sm-link:1:<link_id>:<e_N public>"
    E: await seal_identity_for_link(seed, code) -> e_E public, box, verification code (shown on E)
    N: open_link_offer(e_N, ..., e_E, box)   -> verification code (shown on N), then await open() -> seed

    shared = X25519(e_E, e_N)                       (low-order keys rejected: invalid_key)
    th     = link_id || e_N public || e_E public    (16 + 32 + 32 bytes)
    mk     = HKDF(32 x 0x00, shared, "SecuredMessenger Link v2", 32)
    box    = ENCRYPT(mk, 0x01 || seed, th)          (section 5.1: the configured MessageAEAD)
    code   = u32(HKDF(32 x 0x00, shared, "SecuredMessenger Link Verify v2" || th, 4)) mod 10^6

The server relays e_N and e_E, so it could put its own key in place of either; it cannot make both
devices show the same code that way (one chance in 10^6). Hence the two steps on N: the code first, the
seed only after the user confirmed that both screens match (:meth:`LinkOpening.open`).

X25519 and HKDF are ``cryptography``'s; ENCRYPT/DECRYPT is :class:`.library.MessageAEAD`, the one the
sessions use (AES-256-CBC + HMAC-SHA-256, tag checked in constant time). Python ``bytes`` cannot be
wiped, so unlike the JavaScript side nothing here is overwritten after use.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from doubleratchet import AuthenticationFailedException, DecryptionFailedException

from .constants import (
    AES_BLOCK_LENGTH,
    KEY_LENGTH,
    LINK_BOX_VERSION,
    LINK_CODE_PREFIX,
    LINK_CODE_VERSION,
    LINK_ID_LENGTH,
    LINK_INFO,
    LINK_VERIFY_INFO,
    MAC_LENGTH,
)
from .encoding import b64decode, b64encode
from .errors import ErrorCode, ProtocolError
from .library import MessageAEAD

RandomSource = Callable[[int], bytes]

_ZERO_SALT = b"\x00" * 32
# The box holds the format version byte and the 32-byte Ed25519 identity seed.
_BOX_PLAINTEXT_LENGTH = 1 + KEY_LENGTH
# Surrounding whitespace parse_link_code ignores: ASCII only (TAB, LF, FF, CR, SPACE, the WHATWG "ASCII
# whitespace"), exactly as link.js; str.strip() without arguments would strip more (Unicode spaces).
_SURROUNDING_WHITESPACE = "\t\n\f\r "
# http(s)://<anything without '#' or whitespace>#link=<code>: the QR code's URL.
_LINK_URL = re.compile(r"[Hh][Tt][Tt][Pp][Ss]?://[^#\t\n\f\r ]*#link=(.*)", re.DOTALL)


@dataclass(frozen=True)
class LinkRequest:
    """N's half: keep ``ephemeral_private_key`` in memory until the offer is opened; show ``code``."""

    ephemeral_private_key: bytes = field(repr=False)
    ephemeral_public_key: bytes
    code: str


@dataclass(frozen=True)
class LinkCode:
    link_id: bytes
    public_key: bytes


@dataclass(frozen=True)
class LinkOffer:
    """E's answer: send ``ephemeral_key`` and ``ciphertext`` as the offer; show ``verification_code``."""

    link_id: bytes
    ephemeral_key: bytes
    ciphertext: bytes
    verification_code: str


def _require_bytes(value: object, length: int, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != length:
        raise ProtocolError(ErrorCode.INVALID_ARGUMENT, f"{what} must be {length} bytes")
    return bytes(value)


def _draw(random: RandomSource | None, length: int) -> bytes:
    value = (random or secrets.token_bytes)(length)
    return _require_bytes(value, length, "random source output")


def _x25519_public_key(private_key: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(private_key).public_key().public_bytes_raw()


def _x25519_shared_secret(private_key: bytes, public_key: bytes) -> bytes:
    """X25519; a low-order public key (all-zero output, which cryptography refuses) is INVALID_KEY."""
    try:
        return X25519PrivateKey.from_private_bytes(private_key).exchange(X25519PublicKey.from_public_bytes(public_key))
    except ValueError as error:
        raise ProtocolError(ErrorCode.INVALID_KEY, "X25519 public key is invalid or of low order") from error


def _hkdf(key_material: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=_ZERO_SALT, info=info).derive(key_material)


def _format_verification_code(value: int) -> str:
    """'012 345': six digits, zero-padded, in two groups of three."""
    digits = f"{value:06d}"
    return f"{digits[:3]} {digits[3:]}"


def _derive_link_secrets(private_key: bytes, peer_public_key: bytes, transcript: bytes) -> tuple[bytes, str]:
    """The box key and the verification code of one link run."""
    shared = _x25519_shared_secret(private_key, peer_public_key)
    box_key = _hkdf(shared, LINK_INFO, 32)
    verify = _hkdf(shared, LINK_VERIFY_INFO + transcript, 4)
    return box_key, _format_verification_code(int.from_bytes(verify, "big") % 1_000_000)


def create_link_request(link_id: str, *, random: RandomSource | None = None) -> LinkRequest:
    """N's first step, once the server opened a link: ``link_id`` is its canonical base64 of 16 bytes."""
    b64decode(link_id, length=LINK_ID_LENGTH, what="link id")
    private_key = _draw(random, KEY_LENGTH)
    public_key = _x25519_public_key(private_key)
    code = f"{LINK_CODE_PREFIX}:{LINK_CODE_VERSION}:{link_id}:{b64encode(public_key)}"
    return LinkRequest(ephemeral_private_key=private_key, ephemeral_public_key=public_key, code=code)


def parse_link_code(text: object) -> LinkCode:
    """Reads a link code as typed, pasted or scanned.

    ``sm-link:1:<base64 link id>:<base64 e_N public>``, or the QR code's URL ``http(s)://.../#link=<code>``,
    with surrounding ASCII whitespace. Strict: exactly four fields, version 1, canonical base64 of 16 and
    32 bytes, no percent-decoding; anything else is INVALID_LINK_CODE (a non-string: INVALID_ARGUMENT).
    A low-order key parses; sealing to it fails with INVALID_KEY.
    """
    if not isinstance(text, str):
        raise ProtocolError(ErrorCode.INVALID_ARGUMENT, "link code must be a string")
    code = text.strip(_SURROUNDING_WHITESPACE)
    url = _LINK_URL.fullmatch(code)
    if url is not None:
        code = url.group(1)
    fields = code.split(":")
    if len(fields) != 4:
        raise ProtocolError(ErrorCode.INVALID_LINK_CODE, 'not a link code: expected four fields separated by ":"')
    prefix, version, link_id, public_key = fields
    if prefix != LINK_CODE_PREFIX:
        raise ProtocolError(ErrorCode.INVALID_LINK_CODE, f"not a link code: prefix is not {LINK_CODE_PREFIX}")
    if version != str(LINK_CODE_VERSION):
        raise ProtocolError(ErrorCode.INVALID_LINK_CODE, "not a link code: unsupported link code version")
    code_error = ErrorCode.INVALID_LINK_CODE
    return LinkCode(
        link_id=b64decode(link_id, length=LINK_ID_LENGTH, code=code_error, what="link id"),
        public_key=b64decode(public_key, length=KEY_LENGTH, code=code_error, what="link public key"),
    )


async def seal_identity_for_link(identity_seed: bytes, code: str, *, random: RandomSource | None = None) -> LinkOffer:
    """E's step: seals the 32-byte identity seed for the new device named by ``code``."""
    seed = _require_bytes(identity_seed, KEY_LENGTH, "identity seed")
    parsed = parse_link_code(code)
    private_key = _draw(random, KEY_LENGTH)
    public_key = _x25519_public_key(private_key)
    transcript = parsed.link_id + parsed.public_key + public_key
    box_key, verification_code = _derive_link_secrets(private_key, parsed.public_key, transcript)
    ciphertext = await MessageAEAD.encrypt(bytes([LINK_BOX_VERSION]) + seed, box_key, transcript)
    return LinkOffer(
        link_id=parsed.link_id, ephemeral_key=public_key, ciphertext=ciphertext, verification_code=verification_code
    )


class LinkOpening:
    """N's view of an offer: ``verification_code`` now, the seed from :meth:`open` after confirmation.

    :meth:`open` and :meth:`discard` each end the opening; :meth:`open` after either is INVALID_ARGUMENT.
    The caller still checks that the seed's public key is the account's identity key.
    """

    def __init__(self, box_key: bytes, transcript: bytes, box: bytes, verification_code: str) -> None:
        self.verification_code = verification_code
        self._box_key: bytes | None = box_key
        self._transcript = transcript
        self._box = box

    def __repr__(self) -> str:
        return f"LinkOpening(verification_code={self.verification_code!r})"

    def discard(self) -> None:
        self._box_key = None

    async def open(self) -> bytes:
        """The 32-byte identity seed: AUTHENTICATION_FAILED for a box that does not authenticate,
        INVALID_LINK_BOX for an authentic one that is not 0x01 || 32-byte seed."""
        box_key, self._box_key = self._box_key, None
        if box_key is None:
            raise ProtocolError(ErrorCode.INVALID_ARGUMENT, "this link offer was already opened or discarded")
        box = self._box
        # Same rule as the JavaScript DECRYPT: a length no sender can produce fails like a bad tag.
        if len(box) < AES_BLOCK_LENGTH + MAC_LENGTH or (len(box) - MAC_LENGTH) % AES_BLOCK_LENGTH:
            raise ProtocolError(ErrorCode.AUTHENTICATION_FAILED, "ciphertext has an impossible length")
        try:
            plaintext = await MessageAEAD.decrypt(box, box_key, self._transcript)
        except AuthenticationFailedException as error:
            raise ProtocolError(ErrorCode.AUTHENTICATION_FAILED, "link box authentication failed") from error
        except DecryptionFailedException as error:
            raise ProtocolError(ErrorCode.DECRYPTION_FAILED, "link box did not decrypt") from error
        if not plaintext or plaintext[0] != LINK_BOX_VERSION:
            raise ProtocolError(ErrorCode.INVALID_LINK_BOX, "link box has an unsupported format version")
        if len(plaintext) != _BOX_PLAINTEXT_LENGTH:
            raise ProtocolError(ErrorCode.INVALID_LINK_BOX, f"link box must hold {_BOX_PLAINTEXT_LENGTH} bytes")
        return plaintext[1:]


def open_link_offer(
    ephemeral_private_key: bytes,
    link_id: bytes,
    new_device_public_key: bytes,
    offerer_public_key: bytes,
    ciphertext: bytes,
) -> LinkOpening:
    """N's step when the offer arrived: computes the verification code without touching the box.

    Show ``verification_code``; call ``await opening.open()`` only after the user confirmed that E shows
    the same one. A low-order ``offerer_public_key`` (e_E) is INVALID_KEY; wrong lengths, or a private key
    that is not e_N's, INVALID_ARGUMENT.
    """
    private_key = _require_bytes(ephemeral_private_key, KEY_LENGTH, "ephemeral private key")
    link_id = _require_bytes(link_id, LINK_ID_LENGTH, "link id")
    new_device_public_key = _require_bytes(new_device_public_key, KEY_LENGTH, "new device public key")
    offerer_public_key = _require_bytes(offerer_public_key, KEY_LENGTH, "offerer public key")
    if not isinstance(ciphertext, bytes | bytearray):
        raise ProtocolError(ErrorCode.INVALID_ARGUMENT, "ciphertext must be bytes")
    if _x25519_public_key(private_key) != new_device_public_key:
        raise ProtocolError(ErrorCode.INVALID_ARGUMENT, "new device public key does not match its private key")
    transcript = link_id + new_device_public_key + offerer_public_key
    box_key, verification_code = _derive_link_secrets(private_key, offerer_public_key, transcript)
    return LinkOpening(box_key, transcript, bytes(ciphertext), verification_code)
