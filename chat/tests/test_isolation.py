"""One user's bad frames never cost another user anything: while Alice and Bob exchange
messages, Mallory (nobody's contact) sends every kind of poison frame from several sockets.
She gets one clear `error` frame per poison frame; Alice and Bob see no error and every
message arrives. Runs on both passes (SQLite + in-memory layer, MariaDB + Redis)."""

import asyncio
import json
import uuid

import pytest
from django.db import connection

from chat import consumers, validation
from chat.tests.helpers import open_socket, receive, send_frame, send_payload

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES = 25
MALLORY_SOCKETS = 4
CLIENT_ID = "6f1c1d52-4a3e-4a4b-9a70-1d0f5c1b2a3e"
DEEP = 30_000  # deeper than the JSON parser goes, and still within the frame size limit


def _send(**fields) -> dict:
    return {
        "type": "send",
        "client_id": CLIENT_ID,
        "to": "bob@example.test",
        "kind": "message",
        "body": "Yg==",
        **fields,
    }


def _frame(document) -> str:
    return json.dumps(document)  # ensure_ascii: NUL and lone surrogates travel as \u escapes


def poison_frames(bob_email: str, mallory_email: str) -> list[tuple[str | bytes, str]]:
    """(frame, the error code Mallory must get for it)."""
    frames: list[tuple[str | bytes, str]] = []
    for frame_type in ("ack", "read", "receipts"):
        for ids in (
            [10**20],
            [2**63],
            [0],
            [-1],
            [1.5],
            [1.0],
            [True],
            ["1"],
            [None],
            [[1]],
            [],
            5,
            "1",
            None,
            list(range(1, validation.MAX_IDS_PER_FRAME + 2)),
        ):
            frames.append((_frame({"type": frame_type, "ids": ids}), "invalid_ids"))
        frames.append((f'{{"type": "{frame_type}", "ids": [NaN, Infinity]}}', "invalid_ids"))
        frames.append((f'{{"type": "{frame_type}", "ids": [1e400]}}', "invalid_ids"))
    for poison in ("\ud800", "\udfff", "a\udc00b", "\x00", "a\x00b"):
        for field in ("client_id", "to", "kind", "body", "type"):
            frames.append((_frame(_send(**{field: poison})), "invalid_string"))
        frames.append((_frame({**_send(), "extra" + poison: 1}), "invalid_string"))
        frames.append((_frame({"type": "typing", "to": poison, "state": "start"}), "invalid_string"))
        frames.append((_frame({"type": "typing", "to": bob_email, "state": poison}), "invalid_string"))
        frames.append((_frame({"type": "ack", "ids": [1], "note": [{"deep": poison}]}), "invalid_string"))
    frames += [
        ("[" * DEEP + "]" * DEEP, "nesting_too_deep"),
        ('{"a":' * (DEEP // 3) + "1" + "}" * (DEEP // 3), "nesting_too_deep"),
        ('{"type": "ack", "ids": ' + "[" * DEEP + "]" * DEEP + "}", "nesting_too_deep"),
        # A send may carry 2 x DEVICES_PER_ACCOUNT_MAX - 1 bodies, a group send a sender key
        # entry per member device (chat.consumers.max_frame_size).
        ("[" * (consumers.max_frame_size() // 2 + 1) + "]" * (consumers.max_frame_size() // 2 + 1), "frame_too_large"),
        (_frame(_send(body="x" * consumers.max_frame_size())), "frame_too_large"),
        (_frame(_send(body="x" * 70_000)), "body_too_large"),
        (_frame(_send(to=bob_email, body="x" * 65_537)), "body_too_large"),
        ("not json", "invalid_frame"),
        ("[1" + "1" * 5000 + "]", "invalid_frame"),  # past Python's 4,300-digit int limit
        ('"a string"', "invalid_frame"),
        ("[]", "invalid_frame"),
        ("null", "invalid_frame"),
        ("", "invalid_frame"),
        (b"\x00\x01", "invalid_frame"),
        (_frame({"type": "shout"}), "unknown_type"),
        (_frame({"type": ["send"]}), "unknown_type"),
        (_frame({"type": None}), "unknown_type"),
        (_frame({}), "unknown_type"),
        (_frame(_send(client_id="nope")), "invalid_client_id"),
        (_frame(_send(client_id=5)), "invalid_client_id"),
        (_frame(_send(kind="html")), "invalid_kind"),
        (_frame(_send(kind=["message"])), "invalid_kind"),
        (_frame(_send(to=5)), "invalid_frame"),
        (_frame(_send(to="x" * 300)), "invalid_frame"),
        (_frame(_send(body=5)), "invalid_frame"),
        (_frame(_send(body={"a": 1})), "invalid_frame"),
        (_frame(_send(body="")), "invalid_frame"),
        (_frame({"type": "typing", "to": bob_email, "state": "dancing"}), "invalid_frame"),
        # Well-formed, refused by the rules.
        (_frame(_send(to=bob_email, client_id=str(uuid.uuid4()))), "not_a_contact"),
        (_frame(_send(to=mallory_email, client_id=str(uuid.uuid4()))), "self_recipient"),
        (_frame({"type": "typing", "to": bob_email, "state": "start"}), "not_a_contact"),
    ]
    return frames


@pytest.fixture
def mallory(make_account):
    """Nobody's contact."""
    return make_account()


async def _converse(alice, bob, alice_socket, bob_socket) -> None:
    """Alice sends MESSAGES envelopes to Bob, who acknowledges each as it arrives; neither
    may see an error, and every message must be sent, delivered and acknowledged."""
    sent_ids, delivered_ids, received_ids = set(), set(), set()

    async def alice_side():
        for _ in range(MESSAGES):
            await send_frame(alice_socket, send_payload(bob))
            await asyncio.sleep(0)
        while len(sent_ids) < MESSAGES or len(delivered_ids) < MESSAGES:
            frame = await receive(alice_socket, timeout=10)
            assert frame["type"] in ("sent", "delivered"), frame
            if frame["type"] == "sent":
                sent_ids.add(frame["id"])
            else:
                delivered_ids.update(frame["ids"])

    async def bob_side():
        while len(received_ids) < MESSAGES:
            frame = await receive(bob_socket, timeout=10)
            assert frame["type"] == "message", frame
            assert frame["from"] == alice.email
            received_ids.add(frame["id"])
            await send_frame(bob_socket, {"type": "ack", "ids": [frame["id"]]})

    await asyncio.gather(alice_side(), bob_side())
    assert sent_ids == delivered_ids == received_ids


async def _poison(socket, frames) -> list[tuple[str, str, str]]:
    """Each frame, then its answer: (the frame's start, expected code, received code)."""
    answers = []
    for frame, code in frames:
        key = "bytes" if isinstance(frame, bytes) else "text"
        await socket.send_input({"type": "websocket.receive", key: frame})  # send_to refuses ""
        answer = await receive(socket, timeout=10)
        assert answer["type"] == "error", answer
        assert answer["detail"]
        answers.append((repr(frame[:60]), code, answer["code"]))
    return answers


async def test_poison_frames_get_their_own_errors_and_cost_the_others_nothing(contacts, mallory, settings):
    alice, bob = contacts
    settings.RATE_LIMITS_ENABLED = False
    frames = poison_frames(bob.email, mallory.email)
    alice_socket, _ = await open_socket(alice)
    bob_socket, _ = await open_socket(bob)
    mallory_sockets = [(await open_socket(mallory))[0] for _ in range(MALLORY_SOCKETS)]

    results = await asyncio.gather(
        _converse(alice, bob, alice_socket, bob_socket),
        *(_poison(socket, frames[i::MALLORY_SOCKETS]) for i, socket in enumerate(mallory_sockets)),
    )

    answers = [answer for socket_answers in results[1:] for answer in socket_answers]
    assert len(answers) == len(frames)
    assert [answer for answer in answers if answer[1] != answer[2]] == []
    for socket in (alice_socket, bob_socket, *mallory_sockets):
        assert await socket.receive_nothing(timeout=0.1)
        await socket.disconnect()


async def test_a_frame_that_fails_in_the_database_fails_alone(contacts, mallory, settings, monkeypatch):
    """With the input checks switched off, what the checks refuse reaches the database and
    raises there, inside batches shared with Alice's and Bob's frames: a lone surrogate in
    `to` (UnicodeEncodeError in both drivers) and, on SQLite, an id past the BIGINT range
    (OverflowError). The batch is redone request by request: Mallory's frames get
    `server_error`, everybody else's their usual answers."""
    alice, bob = contacts
    settings.RATE_LIMITS_ENABLED = False
    monkeypatch.setattr(consumers, "json_check", lambda document, text=None: None)
    monkeypatch.setattr(validation, "is_database_id", lambda value: type(value) is int and value > 0)
    poison = [(_frame(_send(to="x\ud800@x.org", client_id=str(uuid.uuid4()))), "server_error")] * 8
    if connection.vendor == "sqlite":  # MariaDB compares the id as a DECIMAL: no error, no answer
        poison += [(_frame({"type": "ack", "ids": [10**20]}), "server_error")] * 8
    alice_socket, _ = await open_socket(alice)
    bob_socket, _ = await open_socket(bob)
    mallory_sockets = [(await open_socket(mallory))[0] for _ in range(MALLORY_SOCKETS)]

    results = await asyncio.gather(
        _converse(alice, bob, alice_socket, bob_socket),
        *(_poison(socket, poison[i::MALLORY_SOCKETS]) for i, socket in enumerate(mallory_sockets)),
    )

    answers = [answer for socket_answers in results[1:] for answer in socket_answers]
    assert [code for _, _, code in answers] == ["server_error"] * len(poison)
    for socket in (alice_socket, bob_socket, *mallory_sockets):
        assert await socket.receive_nothing(timeout=0.1)
        await socket.disconnect()
