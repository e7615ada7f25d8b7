"""Property: whatever the network does (send, deliver, drop, reorder, redeliver), every message that is
delivered decrypts to what was sent exactly once, and a redelivery is always rejected.

Hypothesis drives the JavaScript implementation (through js_driver.mjs) against the Python libraries, in
both initiator roles, and against itself.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messenger_client.protocol import ProtocolError

from .peers import DriverProcess, JsPeer, PyPeer

OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["send", "send", "deliver", "deliver", "drop", "redeliver"]),
        st.integers(min_value=0, max_value=1),  # 0: initiator -> responder, 1: responder -> initiator
        st.integers(min_value=0, max_value=10_000),  # which in-flight / delivered message
    ),
    max_size=40,
)
_names = itertools.count(1)


@dataclass
class Link:
    """Messages on their way in one direction."""

    in_flight: list[tuple[str, str, bytes]] = field(default_factory=list)  # (kind, body, plaintext)
    delivered: list[tuple[str, str]] = field(default_factory=list)


class Network:
    def __init__(self, initiator: JsPeer | PyPeer, responder: JsPeer | PyPeer) -> None:
        self.peers = (initiator, responder)
        self.links = (Link(), Link())
        self.responder_has_session = False
        self.counter = 0
        initiator.initiate(responder.name, responder.bundle(responder.one_time_prekey_ids()[0]))

    def send(self, direction: int) -> None:
        sender, receiver = self.peers[direction], self.peers[1 - direction]
        if direction == 1 and not self.responder_has_session:
            return  # the responder has nobody to talk to until an initial message arrives
        self.counter += 1
        plaintext = b"message %d from %s" % (self.counter, sender.name.encode())
        kind, body = sender.encrypt(receiver.name, plaintext)
        self.links[direction].in_flight.append((kind, body, plaintext))

    def deliver(self, direction: int, pick: int) -> None:
        link = self.links[direction]
        if not link.in_flight:
            return
        kind, body, plaintext = link.in_flight.pop(pick % len(link.in_flight))
        sender, receiver = self.peers[direction], self.peers[1 - direction]
        assert receiver.receive(sender.name, kind, body) == plaintext
        link.delivered.append((kind, body))
        if direction == 0:
            self.responder_has_session = True

    def drop(self, direction: int, pick: int) -> None:
        link = self.links[direction]
        if link.in_flight:
            link.in_flight.pop(pick % len(link.in_flight))

    def redeliver(self, direction: int, pick: int) -> None:
        link = self.links[direction]
        if not link.delivered:
            return
        kind, body = link.delivered[pick % len(link.delivered)]
        sender, receiver = self.peers[direction], self.peers[1 - direction]
        try:
            receiver.receive(sender.name, kind, body)
        except ProtocolError:
            return
        raise AssertionError("a message was accepted twice")

    def flush(self) -> None:
        """Deliver everything still in flight, newest first (maximally out of order), then redeliver
        every message ever delivered: each must be rejected (exactly once)."""
        for direction in (0, 1):
            while self.links[direction].in_flight:
                self.deliver(direction, -1)
        for direction in (0, 1):
            for pick in range(len(self.links[direction].delivered)):
                self.redeliver(direction, pick)


@settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(pairing=st.sampled_from([("js", "py"), ("py", "js"), ("js", "js")]), operations=OPERATIONS)
def test_any_interleaving_decrypts_each_delivered_message_exactly_once(driver: DriverProcess, pairing, operations):
    peers: list[JsPeer | PyPeer] = []
    try:
        for language, role in zip(pairing, ("initiator", "responder"), strict=True):
            peer_name = f"{role}-{next(_names)}"
            peers.append(JsPeer(driver, peer_name) if language == "js" else PyPeer(peer_name))
        network = Network(*peers)
        network.send(0)  # the conversation starts with an initial message
        for operation, direction, pick in operations:
            if operation == "send":
                network.send(direction)
            elif operation == "deliver":
                network.deliver(direction, pick)
            elif operation == "drop":
                network.drop(direction, pick)
            else:
                network.redeliver(direction, pick)
        network.flush()
    finally:
        for peer in peers:
            if isinstance(peer, PyPeer):
                peer.close()
