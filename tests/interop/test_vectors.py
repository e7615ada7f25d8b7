"""The known-answer vectors of tests/js/vectors.json, recomputed with the Python libraries.

The JavaScript implementation generated the vectors; here the PyPI ``x3dh``/``doubleratchet``/``xeddsa``
libraries, configured by ``messenger_client.protocol.library`` and fed the same "random" values, must produce
the very same keys, signature check, associated data, chain keys and envelope bodies, byte for byte.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import x3dh
import x3dh.base_state
import xeddsa
from doubleratchet import EncryptedMessage
from x3dh.identity_key_pair import IdentityKeyPairSeed

from messenger_client.protocol import b64decode, identity_key_digits, parse_envelope, safety_number
from messenger_client.protocol.library import (
    DOUBLE_RATCHET_PARAMETERS,
    X3DH_PARAMETERS,
    DiffieHellmanRatchet,
    DoubleRatchet,
    X3DHState,
)
from messenger_client.protocol.session import PendingPrekey, Session, library_header

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "js" / "vectors.json").read_text())
INPUTS = VECTORS["inputs"]
OUTPUTS = VECTORS["outputs"]


def h(name: str) -> bytes:
    return bytes.fromhex(INPUTS[name])


class ScriptedSecrets:
    """Stands in for the ``secrets`` module inside ``x3dh.base_state``."""

    def __init__(self, *values: bytes) -> None:
        self._values = list(values)

    def token_bytes(self, length: int) -> bytes:
        value = self._values.pop(0)
        assert len(value) == length
        return value

    @staticmethod
    def choice(options):
        assert len(options) == 1
        return options[0]


@pytest.fixture
def scripted_ratchet_keys(monkeypatch):
    queue: list[bytes] = []
    monkeypatch.setattr(DiffieHellmanRatchet, "_generate_priv", staticmethod(lambda: queue.pop(0)))
    return queue


def test_identity_keys_and_signed_prekey_match(monkeypatch):
    monkeypatch.setattr(
        x3dh.base_state, "secrets", ScriptedSecrets(h("bob_signed_prekey_private"), h("bob_one_time_prekey_private"))
    )
    bob = X3DHState.create(identity_key_pair=IdentityKeyPairSeed(h("bob_identity_seed")), **X3DH_PARAMETERS)
    bob.generate_pre_keys(1)

    bundle = bob.bundle
    assert bundle.identity_key == b64decode(OUTPUTS["bob_identity_key"])
    assert bundle.signed_pre_key == b64decode(OUTPUTS["bob_signed_prekey"]["public_key"])
    assert bundle.pre_keys == frozenset({b64decode(OUTPUTS["bob_one_time_prekey"])})
    assert xeddsa.seed_to_ed25519_pub(h("alice_identity_seed")) == b64decode(OUTPUTS["alice_identity_key"])

    signature = b64decode(OUTPUTS["bob_signed_prekey"]["signature"])
    assert xeddsa.ed25519_verify(signature, bundle.identity_key, bundle.signed_pre_key)
    # Plain RFC 8032 Ed25519 is deterministic: the library's seed signing gives the same bytes.
    assert xeddsa.ed25519_seed_sign(h("bob_identity_seed"), bundle.signed_pre_key) == signature


def test_conversation_bytes_match(monkeypatch, scripted_ratchet_keys):
    asyncio.run(_conversation(monkeypatch, scripted_ratchet_keys))


async def _conversation(monkeypatch, ratchet_keys: list[bytes]) -> None:
    plaintexts = [text.encode() for text in INPUTS["plaintexts"]]
    messages = OUTPUTS["messages"]

    monkeypatch.setattr(
        x3dh.base_state, "secrets", ScriptedSecrets(h("bob_signed_prekey_private"), h("bob_one_time_prekey_private"))
    )
    bob_x3dh = X3DHState.create(identity_key_pair=IdentityKeyPairSeed(h("bob_identity_seed")), **X3DH_PARAMETERS)
    bob_x3dh.generate_pre_keys(1)
    bob_bundle = bob_x3dh.bundle

    # Alice: her own (unused) signed prekey is drawn at creation, then EK_A during the key agreement.
    monkeypatch.setattr(x3dh.base_state, "secrets", ScriptedSecrets(bytes(32), h("alice_ephemeral_private")))
    alice_x3dh = X3DHState.create(identity_key_pair=IdentityKeyPairSeed(h("alice_identity_seed")), **X3DH_PARAMETERS)
    shared_secret, associated_data, x3dh_header = await alice_x3dh.get_shared_secret_active(bob_bundle)
    assert associated_data.hex() == OUTPUTS["x3dh"]["associated_data"]

    ratchet_keys.append(h("alice_ratchet_private_1"))
    alice_ratchet, first = await DoubleRatchet.encrypt_initial_message(
        shared_secret=shared_secret,
        recipient_ratchet_pub=bob_bundle.signed_pre_key,
        message=plaintexts[0],
        associated_data=associated_data,
        **DOUBLE_RATCHET_PARAMETERS,
    )
    alice = Session(
        role="initiator",
        local_identity_key=x3dh_header.identity_key,
        remote_identity_key=bob_bundle.identity_key,
        associated_data=associated_data,
        initial_ephemeral_key=x3dh_header.ephemeral_key,
        pending_prekey=PendingPrekey(INPUTS["bob_signed_prekey_id"], INPUTS["bob_one_time_prekey_id"]),
        ratchet=alice_ratchet,
    )
    assert alice._envelope_for(first.header, first.ciphertext).body == messages[0]["body"]
    assert (await alice.encrypt(plaintexts[1])).body == messages[1]["body"]

    # Bob, from the JavaScript bytes.
    envelope = parse_envelope(messages[0]["kind"], messages[0]["body"])
    bob_secret, bob_ad, signed_prekey_pair = await bob_x3dh.get_shared_secret_passive(
        x3dh.Header(
            identity_key=envelope.prekey.identity_key,
            ephemeral_key=envelope.prekey.ephemeral_key,
            signed_pre_key=bob_bundle.signed_pre_key,
            pre_key=b64decode(OUTPUTS["bob_one_time_prekey"]),
        )
    )
    assert bob_secret == shared_secret
    ratchet_keys.append(h("bob_ratchet_private_1"))
    bob_ratchet, plaintext = await DoubleRatchet.decrypt_initial_message(
        shared_secret=bob_secret,
        own_ratchet_priv=signed_prekey_pair.priv,
        message=EncryptedMessage(header=library_header(envelope.message), ciphertext=envelope.message.ciphertext),
        associated_data=bob_ad,
        **DOUBLE_RATCHET_PARAMETERS,
    )
    assert plaintext == plaintexts[0]
    bob = Session(
        role="responder",
        local_identity_key=bob_bundle.identity_key,
        remote_identity_key=envelope.prekey.identity_key,
        associated_data=bob_ad,
        initial_ephemeral_key=envelope.prekey.ephemeral_key,
        pending_prekey=None,
        ratchet=bob_ratchet,
    )
    assert await bob.decrypt(parse_envelope(messages[1]["kind"], messages[1]["body"])) == plaintexts[1]
    assert (await bob.encrypt(plaintexts[2])).body == messages[2]["body"]

    ratchet_keys.append(h("alice_ratchet_private_2"))
    assert await alice.decrypt(parse_envelope(messages[2]["kind"], messages[2]["body"])) == plaintexts[2]
    answer = await alice.encrypt(plaintexts[3])
    assert (answer.kind, answer.body) == (messages[3]["kind"], messages[3]["body"])
    assert not ratchet_keys, "every scripted ratchet key was used"
    ratchet_keys.append(bytes(range(32)))  # Bob's next ratchet key, not part of the vectors
    assert await bob.decrypt(parse_envelope(answer.kind, answer.body)) == plaintexts[3]


def test_root_and_first_chain_key_match(monkeypatch, scripted_ratchet_keys):
    async def run() -> None:
        monkeypatch.setattr(x3dh.base_state, "secrets", ScriptedSecrets(h("bob_signed_prekey_private")))
        bob = X3DHState.create(identity_key_pair=IdentityKeyPairSeed(h("bob_identity_seed")), **X3DH_PARAMETERS)
        bundle = bob.bundle._replace(pre_keys=frozenset({b64decode(OUTPUTS["bob_one_time_prekey"])}))
        monkeypatch.setattr(x3dh.base_state, "secrets", ScriptedSecrets(bytes(32), h("alice_ephemeral_private")))
        alice = X3DHState.create(identity_key_pair=IdentityKeyPairSeed(h("alice_identity_seed")), **X3DH_PARAMETERS)
        shared_secret, associated_data, _ = await alice.get_shared_secret_active(bundle)
        scripted_ratchet_keys.append(h("alice_ratchet_private_1"))
        ratchet, _ = await DoubleRatchet.encrypt_initial_message(
            shared_secret=shared_secret,
            recipient_ratchet_pub=bundle.signed_pre_key,
            message=b"",
            associated_data=associated_data,
            **DOUBLE_RATCHET_PARAMETERS,
        )
        model = ratchet.model.diffie_hellman_ratchet
        assert model.root_chain.key.hex() == OUTPUTS["x3dh"]["root_key_after_first_step"]
        # The library stores the chain key *after* deriving the first message key; step back by checking
        # that one KDF_CK step from the vector's chain key gives the library's current key.
        first_chain_key = bytes.fromhex(OUTPUTS["x3dh"]["alice_first_sending_chain_key"])
        import hmac as std_hmac

        next_chain_key = std_hmac.new(first_chain_key, b"\x02", "sha256").digest()
        assert model.symmetric_key_ratchet.sending_chain.key == next_chain_key

    asyncio.run(run())


def test_safety_number_matches():
    alice = b64decode(OUTPUTS["alice_identity_key"])
    bob = b64decode(OUTPUTS["bob_identity_key"])
    assert identity_key_digits(alice) == OUTPUTS["alice_safety_digits"]
    assert safety_number(alice, bob) == safety_number(bob, alice) == OUTPUTS["safety_number"]
