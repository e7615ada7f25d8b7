"""Behaviours docs/PROTOCOL.md pins down, checked on the Python side with the same inputs as
tests/js/protocol_rules.test.mjs: the order of the envelope parse checks, a bundle without a
`one_time_prekey` field, key ids after exhaustion, and the unauthenticated prekey ids of a repeated
initial message (JavaScript and Python each way)."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest

from messenger_client.protocol import (
    ErrorCode,
    ProtocolAccount,
    ProtocolError,
    encode_envelope,
    parse_bundle,
    parse_envelope,
)
from messenger_client.protocol.constants import MAX_BODY_LENGTH, MAX_KEY_ID


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# (kind, body, code): each body also breaks a later rule, so the first failing rule names the code.
ORDER_CASES = [
    ("other", "!", ErrorCode.KIND_MISMATCH),
    ("message", 42, ErrorCode.MALFORMED_ENVELOPE),
    ("message", "!" * (MAX_BODY_LENGTH + 1), ErrorCode.BODY_TOO_LARGE),
    ("message", "AgE", ErrorCode.MALFORMED_ENVELOPE),
    ("message", b64(bytes([2])), ErrorCode.MALFORMED_ENVELOPE),
    ("message", b64(bytes([2, 1])), ErrorCode.UNSUPPORTED_VERSION),
    ("message", b64(bytes([1, 1])), ErrorCode.KIND_MISMATCH),
    ("prekey", b64(bytes([1, 1]) + bytes(68) + bytes([2])), ErrorCode.MALFORMED_ENVELOPE),
]


@pytest.mark.parametrize(("kind", "body", "code"), ORDER_CASES)
def test_envelope_checks_run_in_the_documented_order(kind, body, code):
    with pytest.raises(ProtocolError) as error:
        parse_envelope(kind, body)
    assert error.value.code == code


def test_a_bundle_without_a_one_time_prekey_field_means_no_one_time_prekey():
    bundle = ProtocolAccount.create().bundle()
    bundle.pop("one_time_prekey", None)
    assert parse_bundle(bundle).one_time_prekey is None


def test_after_the_last_one_time_prekey_id_asking_for_more_gives_key_id_exhausted():
    data = ProtocolAccount.create().to_json()
    data["next_one_time_prekey_id"] = MAX_KEY_ID - 1
    account = ProtocolAccount.from_json(data)
    assert [p["key_id"] for p in account.generate_one_time_prekeys(2)] == [MAX_KEY_ID - 1, MAX_KEY_ID]
    with pytest.raises(ProtocolError) as error:
        account.generate_one_time_prekeys(1)
    assert error.value.code == ErrorCode.KEY_ID_EXHAUSTED


def test_after_the_last_signed_prekey_id_a_rotation_gives_key_id_exhausted_and_keeps_the_current_key():
    data = ProtocolAccount.create().to_json()
    data["next_signed_prekey_id"] = MAX_KEY_ID + 1
    account = ProtocolAccount.from_json(data)
    current = account.signed_prekey()
    with pytest.raises(ProtocolError) as error:
        account.rotate_signed_prekey()
    assert error.value.code == ErrorCode.KEY_ID_EXHAUSTED
    assert account.signed_prekey() == current  # not half-rotated: the published key is still the one held


@pytest.mark.parametrize(("initiator_language", "responder_language"), [("js", "py"), ("py", "js")])
def test_a_repeated_prekey_envelopes_prekey_ids_are_not_authenticated_once_the_session_exists(
    make_peer, initiator_language, responder_language
):
    """docs/PROTOCOL.md section 6: only IK_A and EK_A route a repeated initial message to the
    session; its SPK id, OPK id and OPK flag are not used, so changing them changes nothing."""
    initiator = make_peer(initiator_language, "initiator")
    responder = make_peer(responder_language, "responder")
    initiator.initiate(responder.name, responder.bundle(responder.one_time_prekey_ids()[0]))
    first = initiator.encrypt(responder.name, b"first")
    second = initiator.encrypt(responder.name, b"second")
    assert responder.receive(initiator.name, *first) == b"first"

    envelope = parse_envelope(*second)
    changed = replace(envelope, prekey=replace(envelope.prekey, signed_prekey_id=99, one_time_prekey_id=None))
    out = encode_envelope(changed)
    assert out.body != second[1]
    assert responder.receive(initiator.name, out.kind, out.body) == b"second"
