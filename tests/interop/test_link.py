"""Device linking (docs/PROTOCOL.md section 18): tests/js/link_vectors.json recomputed in Python, boxes
opened across languages, and the same refusals with the same codes as tests/js/link.test.mjs.

The JavaScript implementation generated the vectors; messenger_client.protocol.link, on ``cryptography``
and the sessions' MessageAEAD, must reproduce every value byte for byte from the same inputs.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
import xeddsa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from messenger_client.protocol import (
    ErrorCode,
    ProtocolError,
    b64decode,
    b64encode,
    create_link_request,
    open_link_offer,
    parse_link_code,
    seal_identity_for_link,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
VECTORS = json.loads((REPO_ROOT / "tests" / "js" / "link_vectors.json").read_text())
CASES = VECTORS["cases"]
BASIC = CASES[0]
LINK_ID = BASIC["inputs"]["link_id"]


def scripted(*hex_values: str):
    """A random source returning the given values in order, one per draw, and failing when they run out."""
    queue = [bytes.fromhex(value) for value in hex_values]

    def draw(length: int) -> bytes:
        value = queue.pop(0)
        assert len(value) == length
        return value

    draw.queue = queue  # type: ignore[attr-defined]
    return draw


def low_order_encodings() -> list[bytes]:
    """The five low-order X25519 points in every encoding that decodes to them (PROTOCOL.md section 1)."""
    p = 2**255 - 19
    points = [
        0,
        1,
        p - 1,
        325606250916557431795983626356110631294008115727848805560023387167927233504,
        39382357235489614581723060781553021112529911719440698176882885853963445705823,
    ]
    values = [*points, *(u + 2**255 for u in points), p, p + 1]
    return [u.to_bytes(32, "little") for u in values]


def case_opening(case: dict, box: str):
    inputs, outputs = case["inputs"], case["outputs"]
    parsed = parse_link_code(outputs["link_code"])
    return open_link_offer(
        bytes.fromhex(inputs["new_device_ephemeral_private"]),
        parsed.link_id,
        parsed.public_key,
        b64decode(outputs["existing_device_ephemeral_public"]),
        b64decode(box),
    )


async def honest_run(seed: bytes = bytes(range(32))):
    request = create_link_request(LINK_ID)
    offer = await seal_identity_for_link(seed, request.code)
    parsed = parse_link_code(request.code)
    return seed, request, offer, parsed


def opener(request, parsed, ephemeral_key: bytes, ciphertext: bytes):
    return open_link_offer(request.ephemeral_private_key, parsed.link_id, parsed.public_key, ephemeral_key, ciphertext)


# -- known-answer vectors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
async def test_python_reproduces_every_vector_value(case):
    inputs, outputs = case["inputs"], case["outputs"]
    new_device_random = scripted(inputs["new_device_ephemeral_private"])
    request = create_link_request(inputs["link_id"], random=new_device_random)
    assert request.code == outputs["link_code"]
    assert b64encode(request.ephemeral_public_key) == outputs["new_device_ephemeral_public"]
    assert not new_device_random.queue

    seed = bytes.fromhex(inputs["identity_seed"])
    existing_device_random = scripted(inputs["existing_device_ephemeral_private"])
    offer = await seal_identity_for_link(seed, request.code, random=existing_device_random)
    assert not existing_device_random.queue
    assert b64encode(offer.link_id) == inputs["link_id"]
    assert b64encode(offer.ephemeral_key) == outputs["existing_device_ephemeral_public"]
    assert b64encode(offer.ciphertext) == outputs["box"]
    assert offer.verification_code == outputs["verification_code"]
    assert b64encode(xeddsa.seed_to_ed25519_pub(seed)) == outputs["identity_key"]


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_internal_values_match_the_section_18_formulas(case):
    """Recomputed from the formulas with cryptography alone, independently of link.py."""
    inputs, outputs = case["inputs"], case["outputs"]
    existing = X25519PrivateKey.from_private_bytes(bytes.fromhex(inputs["existing_device_ephemeral_private"]))
    new_device_public = b64decode(outputs["new_device_ephemeral_public"])
    shared = existing.exchange(X25519PublicKey.from_public_bytes(new_device_public))
    transcript = b64decode(inputs["link_id"]) + new_device_public + existing.public_key().public_bytes_raw()
    assert shared.hex() == outputs["shared_secret"]
    assert transcript.hex() == outputs["transcript"]

    def hkdf(info: bytes, length: int) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=bytes(32), info=info).derive(shared)

    assert hkdf(b"SecuredMessenger Link v2", 32).hex() == outputs["box_key"]
    number = int.from_bytes(hkdf(b"SecuredMessenger Link Verify v2" + transcript, 4), "big") % 10**6
    assert f"{number:06d}"[:3] + " " + f"{number:06d}"[3:] == outputs["verification_code"]


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
async def test_python_opens_the_javascript_box_after_the_same_code(case):
    opening = case_opening(case, case["outputs"]["box"])
    assert opening.verification_code == case["outputs"]["verification_code"]
    assert (await opening.open()).hex() == case["inputs"]["identity_seed"]


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
@pytest.mark.parametrize("box", ["box_version_2", "box_short_seed"])
async def test_an_authentic_box_that_is_not_version_1_and_a_seed_is_invalid_link_box(case, box):
    opening = case_opening(case, case["outputs"][box])
    assert opening.verification_code == case["outputs"]["verification_code"]
    with pytest.raises(ProtocolError) as error:
        await opening.open()
    assert error.value.code == ErrorCode.INVALID_LINK_BOX


# -- link codes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("accepted", VECTORS["parse"]["accepted"], ids=lambda accepted: repr(accepted["text"][:40]))
def test_link_codes_with_whitespace_or_in_the_qr_url_parse_to_the_same_bytes(accepted):
    parsed = parse_link_code(accepted["text"])
    assert (b64encode(parsed.link_id), b64encode(parsed.public_key)) == (accepted["link_id"], accepted["public_key"])


@pytest.mark.parametrize("rejected", VECTORS["parse"]["rejected"], ids=lambda rejected: rejected["why"])
def test_anything_else_is_invalid_link_code(rejected):
    with pytest.raises(ProtocolError) as error:
        parse_link_code(rejected["text"])
    assert error.value.code == ErrorCode.INVALID_LINK_CODE


@pytest.mark.parametrize("value", [None, 42, b"sm-link", {"code": "x"}])
def test_a_link_code_that_is_not_a_string_is_a_caller_error(value):
    with pytest.raises(ProtocolError) as error:
        parse_link_code(value)
    assert error.value.code == ErrorCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "link_id", ["", "Y/nb6pwRz1phj9eXX5Kzsw", "Y/nb6pwRz1phj9eXX5KzsB==", b64encode(bytes(15)), 16, None]
)
def test_create_link_request_refuses_a_bad_link_id(link_id):
    with pytest.raises(ProtocolError) as error:
        create_link_request(link_id)
    assert error.value.code == ErrorCode.INVALID_ARGUMENT


# -- across languages ---------------------------------------------------------------------------------------


async def test_javascript_opens_a_python_box_after_the_same_code(driver):
    seed = bytes(range(100, 132))
    request = driver.call("link_request", name="py-seals", link_id=LINK_ID)
    offer = await seal_identity_for_link(seed, request["code"])
    opened = driver.call(
        "link_open",
        name="py-seals",
        code=request["code"],
        ephemeral_key=b64encode(offer.ephemeral_key),
        ciphertext=b64encode(offer.ciphertext),
    )
    assert opened == {"verification_code": offer.verification_code, "identity_seed": b64encode(seed)}


async def test_python_opens_a_javascript_box_after_the_same_code(driver):
    seed = bytes(range(200, 232))
    request = create_link_request(LINK_ID)
    offer = driver.call("link_seal", identity_seed=b64encode(seed), code=f" https://m.example/#link={request.code}\n")
    assert offer["link_id"] == LINK_ID
    parsed = parse_link_code(request.code)
    opening = opener(request, parsed, b64decode(offer["ephemeral_key"]), b64decode(offer["ciphertext"]))
    assert opening.verification_code == offer["verification_code"]
    assert await opening.open() == seed


async def test_javascript_refuses_a_tampered_python_box(driver):
    request = driver.call("link_request", name="tampered", link_id=LINK_ID)
    offer = await seal_identity_for_link(bytes(32), request["code"])
    tampered = bytearray(offer.ciphertext)
    tampered[5] ^= 1
    with pytest.raises(ProtocolError) as error:
        driver.call(
            "link_open",
            name="tampered",
            code=request["code"],
            ephemeral_key=b64encode(offer.ephemeral_key),
            ciphertext=b64encode(bytes(tampered)),
        )
    assert error.value.code == ErrorCode.AUTHENTICATION_FAILED


def test_both_languages_have_the_same_error_codes():
    source = (REPO_ROOT / "static" / "js" / "crypto" / "errors.js").read_text()
    javascript = set(re.findall(r"^\s+[A-Z_]+: '([a-z_]+)',$", source, re.MULTILINE))
    assert javascript == {code.value for code in ErrorCode}
    assert {"invalid_link_code", "invalid_link_box"} <= javascript


# -- refusals -----------------------------------------------------------------------------------------------


async def test_a_tampered_box_is_authentication_failed_but_the_code_is_still_shown():
    _, request, offer, parsed = await honest_run()
    box = offer.ciphertext
    tampered = [
        bytes([box[0] ^ 1]) + box[1:],
        box[:47] + bytes([box[47] ^ 0x80]) + box[48:],
        box[:-1] + bytes([box[-1] ^ 1]),
        box[:64],
        box[16:],
        box + b"\x00",
        b"",
    ]
    for candidate in tampered:
        opening = opener(request, parsed, offer.ephemeral_key, candidate)
        assert opening.verification_code == offer.verification_code
        with pytest.raises(ProtocolError) as error:
            await opening.open()
        assert error.value.code == ErrorCode.AUTHENTICATION_FAILED


async def test_a_box_for_another_new_device_key_or_link_id_gives_another_code_and_does_not_open():
    _, request, offer, parsed = await honest_run()
    other = create_link_request(LINK_ID)
    wrong_key = open_link_offer(
        other.ephemeral_private_key, parsed.link_id, other.ephemeral_public_key, offer.ephemeral_key, offer.ciphertext
    )
    other_link_id = parsed.link_id[:15] + bytes([parsed.link_id[15] ^ 1])
    wrong_link = open_link_offer(
        request.ephemeral_private_key, other_link_id, parsed.public_key, offer.ephemeral_key, offer.ciphertext
    )
    for opening in (wrong_key, wrong_link):
        assert opening.verification_code != offer.verification_code
        with pytest.raises(ProtocolError) as error:
            await opening.open()
        assert error.value.code == ErrorCode.AUTHENTICATION_FAILED


async def test_a_server_answering_with_its_own_key_makes_the_new_device_show_another_code():
    _, request, offer, parsed = await honest_run()
    forged = await seal_identity_for_link(bytes(32), request.code)
    opening = opener(request, parsed, forged.ephemeral_key, forged.ciphertext)
    assert opening.verification_code == forged.verification_code != offer.verification_code


async def test_a_private_key_that_is_not_the_new_device_key_is_a_caller_error():
    _, _, offer, parsed = await honest_run()
    other = create_link_request(LINK_ID)
    with pytest.raises(ProtocolError) as error:
        open_link_offer(other.ephemeral_private_key, parsed.link_id, parsed.public_key, offer.ephemeral_key, b"")
    assert error.value.code == ErrorCode.INVALID_ARGUMENT


@pytest.mark.parametrize("key", low_order_encodings(), ids=lambda key: key.hex()[:8] + "..." + key.hex()[-4:])
async def test_low_order_ephemeral_keys_are_invalid_key_on_both_sides(key):
    with pytest.raises(ProtocolError) as sealing:
        await seal_identity_for_link(bytes(32), f"sm-link:1:{LINK_ID}:{b64encode(key)}")
    assert sealing.value.code == ErrorCode.INVALID_KEY
    request = create_link_request(LINK_ID)
    parsed = parse_link_code(request.code)
    with pytest.raises(ProtocolError) as opening:
        opener(request, parsed, key, b64decode(BASIC["outputs"]["box"]))
    assert opening.value.code == ErrorCode.INVALID_KEY


async def test_open_works_once_and_not_after_discard():
    seed, request, offer, parsed = await honest_run()
    opening = opener(request, parsed, offer.ephemeral_key, offer.ciphertext)
    assert await opening.open() == seed
    discarded = opener(request, parsed, offer.ephemeral_key, offer.ciphertext)
    discarded.discard()
    failed = opener(request, parsed, offer.ephemeral_key, bytes(80))
    with pytest.raises(ProtocolError) as first_failure:
        await failed.open()
    assert first_failure.value.code == ErrorCode.AUTHENTICATION_FAILED
    for spent in (opening, discarded, failed):
        with pytest.raises(ProtocolError) as error:
            await spent.open()
        assert error.value.code == ErrorCode.INVALID_ARGUMENT


async def test_wrong_lengths_and_types_are_invalid_argument():
    seed, request, offer, parsed = await honest_run()
    for bad_seed in (seed[:31], b64encode(seed)):
        with pytest.raises(ProtocolError) as error:
            await seal_identity_for_link(bad_seed, request.code)
        assert error.value.code == ErrorCode.INVALID_ARGUMENT
    k, i, n = request.ephemeral_private_key, parsed.link_id, parsed.public_key
    e, c = offer.ephemeral_key, offer.ciphertext
    for args in [
        (k[1:], i, n, e, c),
        (k, i[1:], n, e, c),
        (k, bytes(17), n, e, c),
        (k, i, n[1:], e, c),
        (k, i, n, e[1:], c),
        (k, i, n, bytes(33), c),
        (k, i, n, e, b64encode(c)),
        (b64encode(k), i, n, e, c),
    ]:
        with pytest.raises(ProtocolError) as error:
            open_link_offer(*args)
        assert error.value.code == ErrorCode.INVALID_ARGUMENT


def test_the_private_key_is_not_in_the_repr():
    request = create_link_request(LINK_ID, random=scripted(BASIC["inputs"]["new_device_ephemeral_private"]))
    assert BASIC["inputs"]["new_device_ephemeral_private"] not in repr(request)
    assert base64.b64encode(request.ephemeral_private_key).decode() not in repr(request)
    assert repr(request.ephemeral_private_key) not in repr(request)
