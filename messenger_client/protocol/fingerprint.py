"""Safety numbers, identical to static/js/crypto/fingerprint.js (docs/PROTOCOL.md, "Safety number").

Per identity key: h_0 = version (u16 BE, 0) || IK; h_(i+1) = SHA-512(h_i || IK) for 5200 iterations; the
first 30 bytes of the result, as six 5-byte big-endian integers mod 100000, give 30 digits. The safety
number is both 30-digit strings in ascending order (60 digits), the same whoever computes it.
"""

import hashlib

from .constants import KEY_LENGTH, SAFETY_NUMBER_ITERATIONS, SAFETY_NUMBER_VERSION
from .errors import ErrorCode, ProtocolError


def identity_key_digits(identity_key: bytes) -> str:
    if not isinstance(identity_key, bytes) or len(identity_key) != KEY_LENGTH:
        raise ProtocolError(ErrorCode.INVALID_ARGUMENT, "identity key must be 32 bytes")
    digest = SAFETY_NUMBER_VERSION.to_bytes(2, "big") + identity_key
    for _ in range(SAFETY_NUMBER_ITERATIONS):
        digest = hashlib.sha512(digest + identity_key).digest()
    return "".join(f"{int.from_bytes(digest[i : i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5))


def safety_number(identity_key_a: bytes, identity_key_b: bytes) -> str:
    """60 digits, symmetric in its arguments."""
    return "".join(sorted([identity_key_digits(identity_key_a), identity_key_digits(identity_key_b)]))


def format_safety_number(digits: str) -> str:
    """Twelve groups of five digits separated by spaces."""
    return " ".join(digits[i : i + 5] for i in range(0, len(digits), 5))
