"""Validation of public key material at the boundary.

What is accepted, and why:
- Keys are standard base64 of exactly 32 raw bytes (signatures 64), in canonical form (the
  string must re-encode to itself), so one key has exactly one stored representation.
- X25519 keys must be canonical (u < p, top bit clear) and must not be of small order: a
  small-order public key (the all-zero point among them) makes every Diffie-Hellman output
  one of a handful of known values, which would let a malicious uploader force a
  predictable shared secret. The check lets OpenSSL do the scalar multiplication (via
  `cryptography`): with a clamped random scalar, the result is all-zero exactly for the
  small-order points, and `cryptography` refuses that result.
- Ed25519 identity keys are also used for Diffie-Hellman (through the birational map to
  Curve25519, see docs/PROTOCOL.md), so they must be canonical, not the neutral element,
  and map to a Curve25519 point that passes the same test.
- A signed prekey's signature is plain Ed25519 over its raw 32-byte public key, verified
  with the identity key before anything is stored.
"""

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from keys.errors import InvalidKeyMaterial

KEY_LENGTH = 32
SIGNATURE_LENGTH = 64
FIELD_PRIME = 2**255 - 19


def decode_base64(value: object, *, length: int, what: str = "key") -> bytes:
    if not isinstance(value, str):
        raise InvalidKeyMaterial(f"The {what} must be a base64 string.")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidKeyMaterial(f"The {what} is not valid standard base64.") from None
    if len(raw) != length:
        raise InvalidKeyMaterial(f"The {what} must be exactly {length} bytes, got {len(raw)}.")
    if base64.b64encode(raw).decode("ascii") != value:
        raise InvalidKeyMaterial(f"The {what} is not in canonical base64 form.")
    return raw


def _check_curve25519_point(raw: bytes, what: str) -> None:
    u = int.from_bytes(raw, "little")
    if u >= FIELD_PRIME:
        raise InvalidKeyMaterial(f"The {what} is not a canonical Curve25519 point.")
    try:
        X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(raw))
    except ValueError:
        raise InvalidKeyMaterial(f"The {what} is a low-order point.") from None


def validate_x25519_public_key(value: object, *, what: str = "key") -> bytes:
    raw = decode_base64(value, length=KEY_LENGTH, what=what)
    _check_curve25519_point(raw, what)
    return raw


def ed25519_public_key_to_x25519(raw: bytes) -> bytes:
    """The Montgomery u-coordinate of an Edwards point: u = (1 + y) / (1 - y) mod p."""
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    u = (1 + y) * pow(1 - y, FIELD_PRIME - 2, FIELD_PRIME) % FIELD_PRIME
    return u.to_bytes(KEY_LENGTH, "little")


def validate_ed25519_public_key(value: object, *, what: str = "identity key") -> bytes:
    raw = decode_base64(value, length=KEY_LENGTH, what=what)
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    if y >= FIELD_PRIME:
        raise InvalidKeyMaterial(f"The {what} is not a canonical Ed25519 point.")
    if y == 1:
        raise InvalidKeyMaterial(f"The {what} is the neutral element.")
    try:
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise InvalidKeyMaterial(f"The {what} is not a valid Ed25519 public key.") from None
    _check_curve25519_point(ed25519_public_key_to_x25519(raw), what)
    return raw


def verify_prekey_signature(identity_key: bytes, prekey: bytes, signature_b64: object) -> None:
    signature = decode_base64(signature_b64, length=SIGNATURE_LENGTH, what="signature")
    try:
        Ed25519PublicKey.from_public_bytes(identity_key).verify(signature, prekey)
    except (InvalidSignature, ValueError):
        raise InvalidKeyMaterial("The signed prekey's signature does not verify with the identity key.") from None
