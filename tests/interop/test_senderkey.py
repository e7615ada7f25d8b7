"""Sender keys (docs/PROTOCOL.md section 22): tests/js/senderkey_vectors.json recomputed in Python, the
JavaScript bodies decrypted, and every rule of section 22 with the same codes as tests/js/senderkey.test.mjs.

The JavaScript implementation generated the vectors; messenger_client.protocol.senderkey must reproduce the
same states, distributions, bodies and records (as JSON) from the same draws. Since the bodies are equal
byte for byte, what each side decrypts, the other side wrote too.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import xeddsa

from messenger_client.protocol import (
    ErrorCode,
    ProtocolError,
    SenderKeyDistribution,
    b64decode,
    b64encode,
    create_sender_key,
    decode_group_plaintext,
    decrypt_group_message,
    encode_group_settings,
    encode_group_text,
    encrypt_group_message,
    parse_sender_key_distribution,
    received_sender_keys,
    sender_key_distribution,
)
from messenger_client.protocol.library import MessageAEAD, MessageChainKDF

REPO_ROOT = Path(__file__).resolve().parents[2]
VECTORS = json.loads((REPO_ROOT / "tests" / "js" / "senderkey_vectors.json").read_text())
INPUTS, OUTPUTS = VECTORS["inputs"], VECTORS["outputs"]
GROUP = "2f1c0a3e-1b2c-4d5e-8f90-a1b2c3d4e5f6"
OTHER_GROUP = "2f1c0a3e-1b2c-4d5e-8f90-a1b2c3d4e5f7"


def label(text: str) -> bytes:
    return hashlib.sha256(f"SecuredMessenger test vector: {text}".encode()).digest()


ALICE_SEED, MALLORY_SEED = label("senderkey alice"), label("senderkey mallory")
ALICE = xeddsa.seed_to_ed25519_pub(ALICE_SEED)
LABELS = {"group_id": GROUP, "sender_identity_key": ALICE, "sender_device": 2}


def scripted(*values: bytes):
    """A random source returning the given values in order, one per draw."""
    queue = list(values)

    def draw(length: int) -> bytes:
        value = queue.pop(0)
        assert len(value) == length
        return value

    draw.queue = queue  # type: ignore[attr-defined]
    return draw


def seeded(text: str):
    counter = iter(range(1_000_000))
    return lambda length: label(f"{text}/{next(counter)}")[:length]


@contextmanager
def raises(code: ErrorCode) -> Iterator[None]:
    """Expects a ProtocolError with ``code``."""
    with pytest.raises(ProtocolError) as info:
        yield
    assert info.value.code == code, repr(info.value)


class Sender:
    """A sender key with helpers to distribute, send, and jump ahead (KDF_CK steps only)."""

    def __init__(self, name: str = "sender key", labels: dict | None = None) -> None:
        self.state = create_sender_key(random=seeded(name))
        self.labels = labels or LABELS

    def distribution(self) -> bytes:
        return sender_key_distribution(self.state, self.labels["group_id"])

    def record(self) -> dict:
        return received_sender_keys(None, parse_sender_key_distribution(self.distribution(), self.labels["group_id"]))

    async def send(self, plaintext: bytes = encode_group_text("hello")) -> str:
        before = copy.deepcopy(self.state)
        state, body = await encrypt_group_message(self.state, plaintext=plaintext, **self.labels)
        assert self.state == before  # never mutated
        self.state = state
        return body

    async def jump_to(self, start: dict, count: int) -> None:
        chain_key = b64decode(start["chainKey"])
        for _ in range(count):
            chain_key = (await MessageChainKDF.derive(chain_key, b"\x02\x01", 64))[:32]
        self.state = {**start, "chainKey": b64encode(chain_key), "iteration": start["iteration"] + count}


async def receive(record, body, **labels):
    frozen = copy.deepcopy(record)
    result = await decrypt_group_message(record, body=body, **{**LABELS, **labels})
    assert record == frozen  # never mutated
    return result


# -- vectors -------------------------------------------------------------------------------------------------


async def test_python_reproduces_the_javascript_vectors():
    group, device = INPUTS["group_id"], INPUTS["sender_device"]
    identity_key = xeddsa.seed_to_ed25519_pub(bytes.fromhex(INPUTS["sender_identity_seed"]))
    assert b64encode(identity_key) == OUTPUTS["sender_identity_key"]
    labels = {"group_id": group, "sender_identity_key": identity_key, "sender_device": device}

    draws = scripted(*(bytes.fromhex(value) for value in INPUTS["first_key_draws"]))
    state = create_sender_key(random=draws)
    assert not draws.queue
    assert state == OUTPUTS["sender_key"]
    assert sender_key_distribution(state, group).hex() == OUTPUTS["distribution"]
    for plaintext, expected in zip(INPUTS["messages"], OUTPUTS["messages"], strict=True):
        state, body = await encrypt_group_message(state, plaintext=bytes.fromhex(plaintext), **labels)
        assert {"body": body, "state_after": state} == expected

    second = create_sender_key(random=scripted(*(bytes.fromhex(value) for value in INPUTS["second_key_draws"])))
    assert second == OUTPUTS["second_sender_key"]
    assert sender_key_distribution(second, group).hex() == OUTPUTS["second_distribution"]
    second_after, body = await encrypt_group_message(
        second, plaintext=bytes.fromhex(INPUTS["second_key_message"]), **labels
    )
    assert {"state": second_after, "body": body} == OUTPUTS["second_key_message"]


async def test_python_decrypts_the_javascript_bodies_into_the_same_records():
    group = INPUTS["group_id"]
    labels = {
        "group_id": group,
        "sender_identity_key": b64decode(OUTPUTS["sender_identity_key"]),
        "sender_device": INPUTS["sender_device"],
    }
    receptions = iter(OUTPUTS["receptions"])
    record = received_sender_keys(None, parse_sender_key_distribution(bytes.fromhex(OUTPUTS["distribution"]), group))
    assert record == next(receptions)["record"]
    for number in INPUTS["delivery_order"]:
        record, plaintext = await decrypt_group_message(record, body=OUTPUTS["messages"][number]["body"], **labels)
        assert plaintext.hex() == INPUTS["messages"][number]
        assert record == next(receptions)["record"]
    distribution = parse_sender_key_distribution(bytes.fromhex(OUTPUTS["second_distribution"]), group)
    record = received_sender_keys(record, distribution)
    assert record == next(receptions)["record"]
    record, plaintext = await decrypt_group_message(record, body=OUTPUTS["second_key_message"]["body"], **labels)
    assert plaintext.hex() == INPUTS["second_key_message"]
    assert record == next(receptions)["record"]
    assert decode_group_plaintext(bytes.fromhex(INPUTS["messages"][1])).name == 'Ünïcödé "group" 🔐'


async def test_the_vector_bodies_follow_the_formulas_of_section_22():
    """Message 0 recomputed from the formulas with the library primitives alone, independently of senderkey.py."""
    group = bytes.fromhex(INPUTS["group_id"].replace("-", ""))
    chain_key, seed = (bytes.fromhex(value) for value in INPUTS["first_key_draws"])
    signing_key = xeddsa.seed_to_ed25519_pub(seed)
    key_id = 1 + int.from_bytes(signing_key[:4], "big") % (2**31 - 1)
    message_key = (await MessageChainKDF.derive(chain_key, b"\x02\x01", 64))[32:]
    header = b"\x01" + key_id.to_bytes(4, "big") + (0).to_bytes(4, "big")
    ad = group + b64decode(OUTPUTS["sender_identity_key"]) + INPUTS["sender_device"].to_bytes(4, "big") + header
    sealed = await MessageAEAD.encrypt(bytes.fromhex(INPUTS["messages"][0]), message_key, ad)
    signature = xeddsa.ed25519_seed_sign(seed, ad + sealed)
    assert b64encode(header + sealed + signature) == OUTPUTS["messages"][0]["body"]
    distribution = b"\x01" + group + key_id.to_bytes(4, "big") + bytes(4) + chain_key + signing_key
    assert distribution.hex() == OUTPUTS["distribution"]


def test_error_codes_are_the_same_strings_in_both_languages():
    errors_js = (REPO_ROOT / "static" / "js" / "crypto" / "errors.js").read_text()
    assert set(re.findall(r"^  [A-Z_]+: '([a-z_]+)',$", errors_js, re.MULTILINE)) == {code.value for code in ErrorCode}


# -- the rules of section 22 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "labels",
    [
        {"group_id": OTHER_GROUP},
        {"sender_identity_key": xeddsa.seed_to_ed25519_pub(MALLORY_SEED)},
        {"sender_device": 3},
    ],
)
async def test_a_relabelled_message_is_invalid_signature(labels):
    sender = Sender()
    record = sender.record()
    body = await sender.send()
    with raises(ErrorCode.INVALID_SIGNATURE):
        await receive(record, body, **labels)
    assert (await receive(record, body))[1] == encode_group_text("hello")


async def test_a_tampered_message_resigned_without_sig_or_forged_with_ck_is_invalid_signature():
    sender = Sender()
    record = sender.record()
    data = b64decode(await sender.send())
    header, sealed = data[:9], bytearray(data[9:-64])
    sealed[0] ^= 1
    ad = bytes.fromhex(GROUP.replace("-", "")) + ALICE + (2).to_bytes(4, "big") + header
    for seed in (MALLORY_SEED, ALICE_SEED):
        forged = header + bytes(sealed) + xeddsa.ed25519_seed_sign(seed, ad + bytes(sealed))
        with raises(ErrorCode.INVALID_SIGNATURE):
            await receive(record, b64encode(forged))
    # A member holding CK writes a message that would pass the MAC, and signs it with its own key.
    message_key = (await MessageChainKDF.derive(b64decode(record["current"]["chainKey"]), b"\x02\x01", 64))[32:]
    header = b"\x01" + record["current"]["keyId"].to_bytes(4, "big") + bytes(4)
    ad = ad[:-9] + header
    sealed = await MessageAEAD.encrypt(encode_group_text("forged"), message_key, ad)
    with raises(ErrorCode.INVALID_SIGNATURE):
        await receive(record, b64encode(header + sealed + xeddsa.ed25519_seed_sign(MALLORY_SEED, ad + sealed)))
    assert (await receive(record, b64encode(data)))[1] == encode_group_text("hello")


async def test_replays_are_duplicate_message():
    sender = Sender()
    record = sender.record()
    bodies = [await sender.send(encode_group_text(str(n))) for n in range(3)]
    record, _ = await receive(record, bodies[0])
    with raises(ErrorCode.DUPLICATE_MESSAGE):
        await receive(record, bodies[0])
    record, _ = await receive(record, bodies[2])
    assert [entry["iteration"] for entry in record["current"]["skippedMessageKeys"]] == [1]
    record, _ = await receive(record, bodies[1])
    for body in bodies:
        with raises(ErrorCode.DUPLICATE_MESSAGE):
            await receive(record, body)


async def test_skip_limit_and_eviction():
    sender = Sender()
    record = sender.record()
    start = sender.state
    await sender.jump_to(start, 1001)
    with raises(ErrorCode.TOO_MANY_SKIPPED_MESSAGES):
        await receive(record, await sender.send())

    bodies = {}
    for n in (0, 1001, 1000, 2001, 3002):
        await sender.jump_to(start, n)
        bodies[n] = await sender.send(encode_group_text(str(n)))
    for n in (1000, 2001, 3002):
        record, _ = await receive(record, bodies[n])
    stored = [entry["iteration"] for entry in record["current"]["skippedMessageKeys"]]
    assert (len(stored), stored[0], stored[-1]) == (2000, 1001, 3001)
    with raises(ErrorCode.DUPLICATE_MESSAGE):
        await receive(record, bodies[0])
    assert (await receive(record, bodies[1001]))[1] == encode_group_text("1001")


async def test_unknown_key_ids_and_removed_members_are_unknown_sender_key():
    old, new = Sender("key before the removal"), Sender("key after the removal")
    removed_members_record = old.record()
    with raises(ErrorCode.UNKNOWN_SENDER_KEY):
        await receive(removed_members_record, await new.send())
    with raises(ErrorCode.UNKNOWN_SENDER_KEY):
        await receive(None, await old.send())
    members_record = received_sender_keys(old.record(), parse_sender_key_distribution(new.distribution(), GROUP))
    assert (await receive(members_record, await new.send(encode_group_text("after"))))[1] == encode_group_text("after")


async def test_distribution_replays_never_rewind_and_rotation_keeps_one_previous_key():
    first, second, third = Sender("first key"), Sender("second key"), Sender("third key")
    distribution = first.distribution()
    record = first.record()
    body = await first.send(encode_group_text("first"))
    record, _ = await receive(record, body)
    replayed = received_sender_keys(record, parse_sender_key_distribution(distribution, GROUP))
    assert replayed == record
    with raises(ErrorCode.DUPLICATE_MESSAGE):
        await receive(replayed, body)

    late = await first.send(encode_group_text("late"))
    record = received_sender_keys(record, parse_sender_key_distribution(second.distribution(), GROUP))
    assert (record["current"]["keyId"], record["previous"]["keyId"]) == (second.state["keyId"], first.state["keyId"])
    assert (await receive(record, late))[1] == encode_group_text("late")
    assert received_sender_keys(record, parse_sender_key_distribution(first.distribution(), GROUP)) == record
    record = received_sender_keys(record, parse_sender_key_distribution(third.distribution(), GROUP))
    with raises(ErrorCode.UNKNOWN_SENDER_KEY):
        await receive(record, await first.send())


def test_the_same_key_id_with_another_signing_key_is_invalid_sender_key():
    one, two = (create_sender_key(random=scripted(bytes(32), label(f"key id collision {i}"))) for i in (72748, 89510))
    assert one["keyId"] == two["keyId"]
    record = received_sender_keys(None, parse_sender_key_distribution(sender_key_distribution(one, GROUP), GROUP))
    with raises(ErrorCode.INVALID_SENDER_KEY):
        received_sender_keys(record, parse_sender_key_distribution(sender_key_distribution(two, GROUP), GROUP))


def _with_key(distribution: bytes, key: bytes) -> bytes:
    key_id = 1 + int.from_bytes(key[:4], "big") % (2**31 - 1)
    return distribution[:17] + key_id.to_bytes(4, "big") + distribution[21:57] + key


TORSIONED = [
    "0000000000000000000000000000000000000000000000000000000000000080",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "f1ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "0100000000000000000000000000000000000000000000000000000000000000",
]


def test_distributions_are_parsed_strictly():
    sender = Sender()
    good = sender.distribution()
    parsed = parse_sender_key_distribution(good, GROUP)
    assert parsed == SenderKeyDistribution(
        key_id=sender.state["keyId"],
        iteration=0,
        chain_key=b64decode(sender.state["chainKey"]),
        signing_key=xeddsa.seed_to_ed25519_pub(b64decode(sender.state["signingSeed"])),
    )
    assert parse_sender_key_distribution(_with_key(good, parsed.signing_key), GROUP) == parsed
    refused = [
        good[:88],
        good + b"\x00",
        b"",
        b"\x02" + good[1:],
        good[:17] + bytes([good[17] ^ 1]) + good[18:],
        *(_with_key(good, bytes.fromhex(key)) for key in TORSIONED),
    ]
    for data in refused:
        with raises(ErrorCode.INVALID_SENDER_KEY):
            parse_sender_key_distribution(data, GROUP)
    with raises(ErrorCode.INVALID_SENDER_KEY):
        parse_sender_key_distribution(good, OTHER_GROUP)
    for data, group in ((bytearray(good), GROUP), (good, GROUP.upper()), (good, GROUP.replace("-", ""))):
        with raises(ErrorCode.INVALID_ARGUMENT):
            parse_sender_key_distribution(data, group)
    with raises(ErrorCode.INVALID_ARGUMENT):
        received_sender_keys(None, "distribution")
    with raises(ErrorCode.INVALID_SENDER_KEY):
        received_sender_keys(None, SenderKeyDistribution(parsed.key_id + 1, 0, parsed.chain_key, parsed.signing_key))


async def test_malformed_bodies_are_refused_before_any_key():
    sender = Sender()
    record = sender.record()
    data = b64decode(await sender.send())
    cases = [
        ("A" * 65_537, ErrorCode.BODY_TOO_LARGE),
        (42, ErrorCode.MALFORMED_ENVELOPE),
        ("not base64!", ErrorCode.MALFORMED_ENVELOPE),
        (b64encode(data).rstrip("="), ErrorCode.MALFORMED_ENVELOPE),  # 121 bytes: padded
        (b64encode(data[:120]), ErrorCode.MALFORMED_ENVELOPE),
        (b64encode(data + b"\x00"), ErrorCode.MALFORMED_ENVELOPE),
        (b64encode(b"\x02" + data[1:]), ErrorCode.UNSUPPORTED_VERSION),
        (b64encode(data[:5] + (2**32 - 1).to_bytes(4, "big") + data[9:]), ErrorCode.MALFORMED_ENVELOPE),
        (b64encode(b"\x01" + (1).to_bytes(4, "big") + bytes(4 + 16 + 32 + 64)), ErrorCode.UNKNOWN_SENDER_KEY),
    ]
    for body, code in cases:
        with raises(code):
            await receive(record, body)


async def test_plaintext_limits_and_chain_exhaustion():
    sender = Sender()
    record = sender.record()
    largest = b"\x01" + b"a" * 32_767
    with raises(ErrorCode.PLAINTEXT_TOO_LARGE):
        await encrypt_group_message(sender.state, plaintext=largest + b"a", **LABELS)
    with raises(ErrorCode.INVALID_ARGUMENT):
        await encrypt_group_message(sender.state, plaintext=b"", **LABELS)
    body = await sender.send(largest)
    assert len(body) <= 65_536
    assert (await receive(record, body))[1] == largest

    sender.state = {**sender.state, "iteration": 2**32 - 2}
    record = sender.record()
    body = await sender.send(encode_group_text("last"))
    assert sender.state["iteration"] == 2**32 - 1
    assert (await receive(record, body))[1] == encode_group_text("last")
    with raises(ErrorCode.CHAIN_EXHAUSTED):
        await sender.send()
    assert parse_sender_key_distribution(sender.distribution(), GROUP).iteration == 2**32 - 1


@pytest.mark.parametrize(
    "labels",
    [
        {"group_id": GROUP.upper()},
        {"group_id": None},
        {"sender_identity_key": bytes(31)},
        {"sender_identity_key": b64encode(ALICE)},
        {"sender_device": 0},
        {"sender_device": 2**31},
        {"sender_device": True},
    ],
)
async def test_invalid_labels_are_invalid_argument(labels):
    sender = Sender()
    record = sender.record()
    body = await sender.send()
    with raises(ErrorCode.INVALID_ARGUMENT):
        await receive(record, body, **labels)
    with raises(ErrorCode.INVALID_ARGUMENT):
        await encrypt_group_message(sender.state, plaintext=b"\x01", **{**LABELS, **labels})


async def test_corrupt_states_and_records_are_invalid_session_state():
    sender = Sender()
    record = sender.record()
    body = await sender.send()
    state = sender.state
    for corrupt in (
        None,
        {**state, "version": 2},
        {**state, "keyId": state["keyId"] + 1},
        {**state, "iteration": 2**32},
        {**state, "chainKey": "AAAA"},
    ):
        with raises(ErrorCode.INVALID_SESSION_STATE):
            await encrypt_group_message(corrupt, plaintext=b"\x01", **LABELS)
        with raises(ErrorCode.INVALID_SESSION_STATE):
            sender_key_distribution(corrupt, GROUP)
    current = record["current"]
    without_previous = {key: value for key, value in record.items() if key != "previous"}
    for corrupt in (
        {**record, "version": 2},
        without_previous,
        {**record, "previous": current},
        {**record, "current": {**current, "keyId": current["keyId"] + 1}},
        {**record, "current": {**current, "skippedMessageKeys": [{"iteration": 0, "messageKey": current["chainKey"]}]}},
        {**record, "current": {**current, "skippedMessageKeys": "none"}},
        {**record, "current": {**current, "iteration": 1, "skippedMessageKeys": [{"iteration": 0, "messageKey": [1]}]}},
    ):
        with raises(ErrorCode.INVALID_SESSION_STATE):
            await receive(corrupt, body)
    with raises(ErrorCode.INVALID_ARGUMENT):
        create_sender_key(random=lambda length: bytes(31))


# -- group plaintexts ----------------------------------------------------------------------------------------


def test_group_plaintexts_encode_as_javascript_does():
    assert encode_group_text("hi") == b"\x01hi"
    assert decode_group_plaintext(encode_group_text("")).text == ""
    assert encode_group_settings(name='a"b') == b'\x02{"name":"a\\"b"}'
    assert encode_group_settings(name="Ünï") == b'\x02{"name":"\xc3\x9cn\xc3\xaf"}'
    name = "🔐" * 64
    assert decode_group_plaintext(encode_group_settings(name=name)).name == name
    assert decode_group_plaintext(b'\x02{"topic":1,"name":"Team"}').name == "Team"
    assert decode_group_plaintext(b'\x02{"n":' + b"1" * 5000 + b',"name":"Team"}').name == "Team"
    unknown = decode_group_plaintext(b"\x03\x01\x02")
    assert (unknown.type, unknown.type_byte) == ("unknown", 3)


@pytest.mark.parametrize(
    "name", ["", "a" * 65, "🔐" * 65, "tab\there", "bell\x07", "del\x7f", "c1\x85", "lone\ud800", 42]
)
def test_group_names_break_the_rule(name):
    with raises(ErrorCode.INVALID_ARGUMENT):
        encode_group_settings(name=name)


@pytest.mark.parametrize(
    "plaintext",
    [
        b"",
        b"\x01\xff",
        b"\x02\xc3",
        b'\x02{"name":"x"',
        b'\x02["x"]',
        b"\x02null",
        b'\x02{"name":7}',
        b"\x02{}",
        b'\x02{"name":""}',
        b'\x02{"name":"\\u0001"}',
        b'\x02{"name":"\\ud800"}',
        b'\x02{"name":"' + b"a" * 65 + b'"}',
        b'\x02{"name":"x","n":NaN}',
        b"\x02" + b"[" * 100_000,
    ],
)
def test_broken_group_plaintexts_are_decryption_failed(plaintext):
    with raises(ErrorCode.DECRYPTION_FAILED):
        decode_group_plaintext(plaintext)


def test_text_with_a_lone_surrogate_and_non_bytes_are_invalid_argument():
    with raises(ErrorCode.INVALID_ARGUMENT):
        encode_group_text("lone \udc00")
    with raises(ErrorCode.INVALID_ARGUMENT):
        decode_group_plaintext("text")  # type: ignore[arg-type]


# -- live, across languages ----------------------------------------------------------------------------------


async def test_messages_states_and_records_move_between_languages(driver):
    """Fresh random keys: JavaScript and Python read each other's messages, and a sender key state or a
    receiver's record written by one language is used by the other (the same JSON)."""
    js_labels = {"group": GROUP, "identity_key": b64encode(ALICE), "device": 2}

    def js_send(state: dict, plaintext: bytes) -> tuple[dict, str]:
        result = driver.call("group_encrypt", state=state, plaintext=b64encode(plaintext), **js_labels)
        return result["state"], result["body"]

    def js_receive(record: dict, body: str) -> tuple[dict, bytes]:
        result = driver.call("group_decrypt", record=record, body=body, **js_labels)
        return result["record"], b64decode(result["plaintext"])

    # A JavaScript sender key, received in Python; then Python continues the same state.
    state = driver.call("sender_key_create")
    py_record = received_sender_keys(
        None,
        parse_sender_key_distribution(
            b64decode(driver.call("sender_key_distribution", state=state, group=GROUP)), GROUP
        ),
    )
    js_record = driver.call(
        "sender_key_receive", record=None, distribution=b64encode(sender_key_distribution(state, GROUP)), group=GROUP
    )
    assert js_record == py_record
    state, first = js_send(state, encode_group_text("from JavaScript"))
    state, second = await encrypt_group_message(state, plaintext=encode_group_text("from Python"), **LABELS)
    state, third = js_send(state, encode_group_text("JavaScript again"))
    # Python reads the third first (the second's key is stored), JavaScript then continues the record.
    py_record, plaintext = await receive(py_record, third)
    assert plaintext == encode_group_text("JavaScript again")
    js_record, plaintext = js_receive(py_record, second)
    assert plaintext == encode_group_text("from Python")
    py_record, plaintext = await receive(js_record, first)
    assert plaintext == encode_group_text("from JavaScript")
    for body in (first, second, third):
        with raises(ErrorCode.DUPLICATE_MESSAGE):
            js_receive(py_record, body)

    # A Python sender key, received in JavaScript; a relabelled message fails the same way there.
    sender = Sender("python sender")
    record = driver.call("sender_key_receive", record=None, distribution=b64encode(sender.distribution()), group=GROUP)
    body = await sender.send(encode_group_settings(name="Team 🔐"))
    with raises(ErrorCode.INVALID_SIGNATURE):
        driver.call("group_decrypt", record=record, body=body, **{**js_labels, "device": 3})
    record, plaintext = js_receive(record, body)
    assert decode_group_plaintext(plaintext).name == "Team 🔐"
