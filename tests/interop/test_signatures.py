"""The strict signature rule of docs/PROTOCOL.md section 2, on the Python side.

`tests/js/signature_vectors.json` (built by tests/js/signatures.mjs with the JavaScript library's
point arithmetic) holds a genuine signature and signatures that a cofactored or lax verifier would
accept. The server verifies signed prekeys with `cryptography` (OpenSSL), the Python client with
libxeddsa; both must accept the genuine one and refuse the others, like the browser
(tests/js/signatures.test.mjs), so no implementation starts a session another would refuse.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest
import xeddsa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from messenger_client.protocol import ErrorCode, ProtocolAccount, ProtocolError

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "js" / "signature_vectors.json").read_text())
PUBLIC_KEY = bytes.fromhex(VECTORS["public_key"])
MESSAGE = bytes.fromhex(VECTORS["message"])
REFUSED = ["torsion_r", "small_order_r", "s_not_reduced", "identity_r"]


def openssl_accepts(signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(PUBLIC_KEY).verify(signature, MESSAGE)
    except InvalidSignature:
        return False
    return True


def test_a_genuine_signature_verifies_on_the_server_and_in_the_python_client():
    signature = bytes.fromhex(VECTORS["valid"])
    assert openssl_accepts(signature)
    assert xeddsa.ed25519_verify(signature, PUBLIC_KEY, MESSAGE)


@pytest.mark.parametrize("name", REFUSED)
def test_a_signature_valid_only_under_a_lax_rule_is_refused_by_the_python_client(name):
    assert not xeddsa.ed25519_verify(bytes.fromhex(VECTORS[name]), PUBLIC_KEY, MESSAGE)


@pytest.mark.parametrize("name", ["torsion_r", "small_order_r", "s_not_reduced"])
def test_a_signature_valid_only_under_a_lax_rule_is_refused_by_the_server(name):
    assert not openssl_accepts(bytes.fromhex(VECTORS[name]))


def test_the_server_accepts_an_identity_r_that_the_clients_refuse():
    """The one documented difference (docs/PROTOCOL.md section 2): R = identity with S = k a satisfies
    the cofactorless equation and OpenSSL takes it; only the key's owner can make one, so it
    cannot be used to plant a signed prekey for someone else. Both clients refuse it."""
    assert openssl_accepts(bytes.fromhex(VECTORS["identity_r"]))


@pytest.mark.parametrize("name", REFUSED)
def test_the_python_client_starts_no_session_from_such_a_bundle(name):
    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    bundle = {
        "identity_key": b64(PUBLIC_KEY),
        "signed_prekey": {"key_id": 1, "public_key": b64(MESSAGE), "signature": b64(bytes.fromhex(VECTORS[name]))},
        "one_time_prekey": None,
    }
    with pytest.raises(ProtocolError) as error:
        asyncio.run(ProtocolAccount.create().initiate_session(bundle, b"hello"))
    assert error.value.code == ErrorCode.INVALID_SIGNATURE
