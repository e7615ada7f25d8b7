"""JavaScript (static/js/crypto under Node) against Python (messenger_client.protocol, i.e. the PyPI x3dh /
doubleratchet / xeddsa libraries), in both directions: each scenario runs once with JavaScript as the X3DH
initiator and once with Python as the initiator."""

from __future__ import annotations

import base64

import pytest

from messenger_client.protocol import ErrorCode, ProtocolError, safety_number
from messenger_client.protocol.encoding import b64decode

from .peers import JsPeer, PyPeer, body_length, tamper

DIRECTIONS = pytest.mark.parametrize(
    ("initiator_language", "responder_language"),
    [("js", "py"), ("py", "js")],
    ids=["js-initiates", "py-initiates"],
)

Peer = JsPeer | PyPeer


def establish(initiator: Peer, responder: Peer, *, with_one_time_prekey: bool = True) -> int | None:
    """X3DH from the responder's bundle, first message delivered. Returns the one-time prekey id used."""
    one_time_prekey_id = responder.one_time_prekey_ids()[0] if with_one_time_prekey else None
    initiator.initiate(responder.name, responder.bundle(one_time_prekey_id))
    kind, body = initiator.encrypt(responder.name, b"hello from the initiator")
    assert kind == "prekey"
    assert responder.receive(initiator.name, kind, body) == b"hello from the initiator"
    return one_time_prekey_id


def exchange(sender: Peer, receiver: Peer, text: bytes) -> None:
    kind, body = sender.encrypt(receiver.name, text)
    assert receiver.receive(sender.name, kind, body) == text


@DIRECTIONS
@pytest.mark.parametrize("with_one_time_prekey", [True, False], ids=["with-opk", "without-opk"])
def test_session_set_up_from_bundle_and_messages_flow_both_ways(
    make_peer, initiator_language, responder_language, with_one_time_prekey
):
    alice = make_peer(initiator_language, "alice")
    bob = make_peer(responder_language, "bob")

    used = establish(alice, bob, with_one_time_prekey=with_one_time_prekey)

    if used is not None:
        assert used not in bob.one_time_prekey_ids(), "a one-time prekey is deleted once a session used it"
    for round_number in range(4):
        exchange(bob, alice, b"reply %d" % round_number)
        exchange(alice, bob, b"message %d" % round_number)
    # After the first reply the initiator no longer sends its X3DH header.
    kind, body = alice.encrypt(bob.name, b"plain message")
    assert kind == "message"
    assert bob.receive(alice.name, kind, body) == b"plain message"


@DIRECTIONS
def test_out_of_order_delivery_across_several_ratchet_steps(make_peer, initiator_language, responder_language):
    alice = make_peer(initiator_language, "alice")
    bob = make_peer(responder_language, "bob")
    alice.initiate(bob.name, bob.bundle(bob.one_time_prekey_ids()[0]))

    # Three initial messages before any reply; the responder gets the last one first.
    initial = [alice.encrypt(bob.name, b"a%d" % i) for i in range(3)]
    assert all(kind == "prekey" for kind, _ in initial)
    for index in (2, 0, 1):
        assert bob.receive(alice.name, *initial[index]) == b"a%d" % index

    for turn in range(6):
        sender, receiver = (bob, alice) if turn % 2 == 0 else (alice, bob)
        batch = [sender.encrypt(receiver.name, b"turn %d msg %d" % (turn, i)) for i in range(4)]
        for index in (3, 1, 0, 2):
            assert receiver.receive(sender.name, *batch[index]) == b"turn %d msg %d" % (turn, index)

    # Messages of an old chain arrive after the chain was replaced by a DH ratchet step.
    late = [alice.encrypt(bob.name, b"late %d" % i) for i in range(3)]
    assert bob.receive(alice.name, *late[2]) == b"late 2"
    exchange(bob, alice, b"bob moves the ratchet")
    exchange(alice, bob, b"alice moves it again")
    assert bob.receive(alice.name, *late[0]) == b"late 0"
    assert bob.receive(alice.name, *late[1]) == b"late 1"


@DIRECTIONS
def test_sessions_survive_a_json_round_trip_mid_conversation(make_peer, initiator_language, responder_language):
    alice = make_peer(initiator_language, "alice")
    bob = make_peer(responder_language, "bob")
    establish(alice, bob)
    pending = bob.encrypt(alice.name, b"sent before the round trip")
    alice.roundtrip(bob.name)
    bob.roundtrip(alice.name)
    assert alice.receive(bob.name, *pending) == b"sent before the round trip"
    exchange(alice, bob, b"after")
    exchange(bob, alice, b"after, too")


@DIRECTIONS
def test_every_single_byte_tamper_is_rejected_and_leaves_the_session_unchanged(
    make_peer, initiator_language, responder_language
):
    alice = make_peer(initiator_language, "alice")
    bob = make_peer(responder_language, "bob")
    establish(alice, bob)
    exchange(bob, alice, b"first reply")

    for sender, receiver in ((alice, bob), (bob, alice)):
        kind, body = sender.encrypt(receiver.name, b"tamper with me")
        before = receiver.session_snapshot(sender.name)
        for position in range(body_length(body)):
            with pytest.raises(ProtocolError):
                receiver.receive(sender.name, kind, tamper(body, position))
            assert receiver.session_snapshot(sender.name) == before, f"state changed by tampered byte {position}"
        assert receiver.receive(sender.name, kind, body) == b"tamper with me"


@DIRECTIONS
def test_tampered_initial_messages_are_rejected_without_consuming_the_one_time_prekey(
    make_peer, initiator_language, responder_language
):
    alice = make_peer(initiator_language, "alice")
    bob = make_peer(responder_language, "bob")
    one_time_prekey_id = bob.one_time_prekey_ids()[0]
    alice.initiate(bob.name, bob.bundle(one_time_prekey_id))
    kind, body = alice.encrypt(bob.name, b"first")
    available = bob.one_time_prekey_ids()

    for position in range(body_length(body)):
        with pytest.raises(ProtocolError):
            bob.receive(alice.name, kind, tamper(body, position))
    assert bob.one_time_prekey_ids() == available, "a failed initial message must not consume a prekey"

    assert bob.receive(alice.name, kind, body) == b"first"
    assert one_time_prekey_id not in bob.one_time_prekey_ids()


@DIRECTIONS
def test_replayed_messages_are_rejected(make_peer, initiator_language, responder_language):
    alice = make_peer(initiator_language, "alice")
    bob = make_peer(responder_language, "bob")
    establish(alice, bob)
    old = bob.encrypt(alice.name, b"old chain")
    assert alice.receive(bob.name, *old) == b"old chain"
    for sender, receiver in ((alice, bob), (bob, alice)):
        message = sender.encrypt(receiver.name, b"once")
        assert receiver.receive(sender.name, *message) == b"once"
        with pytest.raises(ProtocolError) as replay:
            receiver.receive(sender.name, *message)
        assert replay.value.code == ErrorCode.DUPLICATE_MESSAGE

    exchange(bob, alice, b"new chain")
    with pytest.raises(ProtocolError):
        alice.receive(bob.name, *old)  # a message of a chain that has since been replaced


@DIRECTIONS
@pytest.mark.parametrize("with_one_time_prekey", [True, False], ids=["with-opk", "without-opk"])
def test_replayed_initial_message_cannot_recreate_a_session(
    make_peer, initiator_language, responder_language, with_one_time_prekey
):
    alice = make_peer(initiator_language, "alice")
    bob = make_peer(responder_language, "bob")
    one_time_prekey_id = bob.one_time_prekey_ids()[0] if with_one_time_prekey else None
    alice.initiate(bob.name, bob.bundle(one_time_prekey_id))
    initial = alice.encrypt(bob.name, b"first")
    assert bob.receive(alice.name, *initial) == b"first"

    # Replayed into the live session: a duplicate.
    with pytest.raises(ProtocolError) as into_session:
        bob.receive(alice.name, *initial)
    assert into_session.value.code == ErrorCode.DUPLICATE_MESSAGE

    # Replayed as if it opened a new conversation (e.g. after the session was replaced): refused by the
    # ephemeral key guard, before any cryptography.
    with pytest.raises(ProtocolError) as as_new_session:
        bob.receive(alice.name + "-replayed", *initial)
    assert as_new_session.value.code == ErrorCode.REPLAYED_INITIAL_MESSAGE


@DIRECTIONS
def test_bundle_with_a_bad_signature_aborts_the_key_agreement(make_peer, initiator_language, responder_language):
    alice = make_peer(initiator_language, "alice")
    bob = make_peer(responder_language, "bob")
    bundle = bob.bundle(bob.one_time_prekey_ids()[0])
    signature = bytearray(b64decode(bundle["signed_prekey"]["signature"]))
    signature[10] ^= 0x40
    bundle["signed_prekey"]["signature"] = base64.b64encode(bytes(signature)).decode()

    def initiate_and_send() -> None:
        alice.initiate(bob.name, bundle)  # Python defers the key agreement to the first message
        alice.encrypt(bob.name, b"never sent")

    with pytest.raises(ProtocolError) as failure:
        initiate_and_send()
    assert failure.value.code == ErrorCode.INVALID_SIGNATURE


@DIRECTIONS
def test_kind_that_contradicts_the_body_is_rejected(make_peer, initiator_language, responder_language):
    alice = make_peer(initiator_language, "alice")
    bob = make_peer(responder_language, "bob")
    establish(alice, bob)
    exchange(bob, alice, b"reply")
    kind, body = alice.encrypt(bob.name, b"x")
    assert kind == "message"
    with pytest.raises(ProtocolError) as failure:
        bob.receive(alice.name, "prekey", body)
    assert failure.value.code == ErrorCode.KIND_MISMATCH


def test_safety_numbers_are_the_same_in_both_implementations_and_for_both_people(make_peer, driver):
    alice = make_peer("js", "alice")
    bob = make_peer("py", "bob")
    from_js = driver.call("safety_number", a=alice.identity_key, b=bob.identity_key)
    from_js_reversed = driver.call("safety_number", a=bob.identity_key, b=alice.identity_key)
    from_python = safety_number(b64decode(bob.identity_key), b64decode(alice.identity_key))
    assert from_js == from_js_reversed == from_python
    assert len(from_js) == 60
    assert from_js.isdigit()
