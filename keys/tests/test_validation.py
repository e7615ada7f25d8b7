"""Key material at the boundary: Ed25519 identity keys must be of prime order."""

import pytest

from keys import validation
from keys.errors import InvalidKeyMaterial
from tests.helpers import DeviceKeys, b64, raw_public

# The eight small-order points of Edwards25519 (orders 1, 2, 4, 4, 8, 8, 8, 8).
SMALL_ORDER = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
]
BASE_POINT = bytes.fromhex("5866666666666666666666666666666666666666666666666666666666666666")


def encode(point) -> bytes:
    p = validation.FIELD_PRIME
    z_inverse = pow(point[2], p - 2, p)
    x, y = point[0] * z_inverse % p, point[1] * z_inverse % p
    return (y | (x & 1) << 255).to_bytes(32, "little")


def with_torsion(raw: bytes, small_order_hex: str) -> bytes:
    point = validation._edwards_decode(raw)
    torsion = validation._edwards_decode(bytes.fromhex(small_order_hex))
    return encode(validation._edwards_add(point, torsion))


def test_real_identity_keys_and_the_base_point_have_prime_order():
    assert validation.ed25519_has_prime_order(BASE_POINT)
    for _ in range(20):
        validation.validate_ed25519_public_key(DeviceKeys().identity_key)


@pytest.mark.parametrize("small_order", SMALL_ORDER)
def test_small_order_identity_keys_are_refused(small_order):
    assert not validation.ed25519_has_prime_order(bytes.fromhex(small_order))
    with pytest.raises(InvalidKeyMaterial):
        validation.validate_ed25519_public_key(b64(bytes.fromhex(small_order)))


@pytest.mark.parametrize("small_order", SMALL_ORDER[1:])
def test_an_identity_key_with_a_torsion_component_is_refused(small_order):
    """A + T (T of small order) decodes, maps to a usable Curve25519 point and passes
    OpenSSL, yet the browser client refuses it: the server must too."""
    torsioned = with_torsion(raw_public(DeviceKeys().identity), small_order)
    assert validation._edwards_decode(torsioned) is not None
    with pytest.raises(InvalidKeyMaterial, match="prime order"):
        validation.validate_ed25519_public_key(b64(torsioned))


def test_a_non_canonical_or_off_curve_encoding_is_refused():
    off_curve = next(
        bytes([i]) + bytes(31) for i in range(2, 256) if validation._edwards_decode(bytes([i]) + bytes(31)) is None
    )
    assert not validation.ed25519_has_prime_order(off_curve)
    assert not validation.ed25519_has_prime_order((2**255 - 18).to_bytes(32, "little"))  # y >= p
