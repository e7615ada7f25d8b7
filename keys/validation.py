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
  and map to a Curve25519 point that passes the same test. They must also be of prime
  order ([L]A is the neutral element): a key with a small-order (torsion) component is
  refused by the browser client (docs/PROTOCOL.md, section 2) and is where cofactored and
  cofactorless signature verifiers disagree, so the server refuses it too rather than
  store a key that clients would reject.
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


# Edwards25519: -x^2 + y^2 = 1 + d x^2 y^2, prime subgroup order L (RFC 8032, section 5.1).
EDWARDS_D = -121665 * pow(121666, FIELD_PRIME - 2, FIELD_PRIME) % FIELD_PRIME
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493
_SQRT_M1 = pow(2, (FIELD_PRIME - 1) // 4, FIELD_PRIME)
_NEUTRAL = (0, 1, 1, 0)


def _edwards_decode(raw: bytes) -> tuple[int, int, int, int] | None:
    """The point in extended coordinates (X, Y, Z, T), or None when `raw` is not a canonical
    encoding of a curve point (RFC 8032, section 5.1.3)."""
    n = int.from_bytes(raw, "little")
    sign, y = n >> 255, n & ((1 << 255) - 1)
    if y >= FIELD_PRIME:
        return None
    p = FIELD_PRIME
    x2 = (y * y - 1) * pow(EDWARDS_D * y * y + 1, p - 2, p) % p
    if x2 == 0:
        return None if sign else (0, y, 1, 0)
    x = pow(x2, (p + 3) // 8, p)
    if (x * x - x2) % p:
        x = x * _SQRT_M1 % p
    if (x * x - x2) % p:
        return None
    if x & 1 != sign:
        x = p - x
    return (x, y, 1, x * y % p)


def _edwards_add(a: tuple, b: tuple) -> tuple[int, int, int, int]:
    p = FIELD_PRIME
    e1 = (a[1] - a[0]) * (b[1] - b[0]) % p
    e2 = (a[1] + a[0]) * (b[1] + b[0]) % p
    c = 2 * a[3] * b[3] * EDWARDS_D % p
    z = 2 * a[2] * b[2] % p
    e, f, g, h = e2 - e1, z - c, z + c, e2 + e1
    return (e * f % p, g * h % p, f * g % p, e * h % p)


def _edwards_multiply(scalar: int, point: tuple) -> tuple[int, int, int, int]:
    result = _NEUTRAL
    while scalar:
        if scalar & 1:
            result = _edwards_add(result, point)
        point = _edwards_add(point, point)
        scalar >>= 1
    return result


def _is_neutral(point: tuple) -> bool:
    return point[0] % FIELD_PRIME == 0 and (point[1] - point[2]) % FIELD_PRIME == 0


def ed25519_has_prime_order(raw: bytes) -> bool:
    """True when `raw` encodes a point of the prime-order subgroup other than the neutral
    element: [L]A = 0. Points of small order and points with a torsion component fail
    (L is 5 mod 8, so [L] never cancels a component of order 2, 4 or 8)."""
    point = _edwards_decode(raw)
    if point is None or _is_neutral(point):
        return False
    return _is_neutral(_edwards_multiply(GROUP_ORDER, point))


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
    if not ed25519_has_prime_order(raw):
        raise InvalidKeyMaterial(f"The {what} is not of prime order (it has a small-order component).")
    return raw


def verify_prekey_signature(identity_key: bytes, prekey: bytes, signature_b64: object) -> None:
    signature = decode_base64(signature_b64, length=SIGNATURE_LENGTH, what="signature")
    try:
        Ed25519PublicKey.from_public_bytes(identity_key).verify(signature, prekey)
    except (InvalidSignature, ValueError):
        raise InvalidKeyMaterial("The signed prekey's signature does not verify with the identity key.") from None
