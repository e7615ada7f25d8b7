"""Key upkeep in the browser: one-time prekeys are refilled when the server says they run low
and at sign-in; the signed prekey is rotated on schedule, its replaced private key kept for
the grace period and deleted after it.

Contacts use up someone's one-time prekeys by fetching their bundle (each fetch claims one for
good), so the tests drain them through the API with a contact's own session, then watch the
owner's browser put the supply back.
"""

import json
import re
import sqlite3
import time

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

DAY_MS = 24 * 3600 * 1000
# static/js/session.js: ONE_TIME_PREKEY_BATCH, ONE_TIME_PREKEY_MIN, SIGNED_PREKEY_ROTATE_MS and
# SIGNED_PREKEY_GRACE_MS; keys/models.py: ONE_TIME_PREKEYS_LOW (below it the server pushes
# `prekeys_low`).
BATCH = 100
CLIENT_MIN = 25
SERVER_LOW = 10
ROTATE_DAYS = 7
GRACE_DAYS = 30


def server_one_time_prekeys(server, email: str) -> dict[int, tuple[str, bool]]:
    """key id -> (public key, claimed) of every one-time prekey the server holds for `email`."""
    connection = sqlite3.connect(f"file:{server.db_path}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT k.key_id, k.public_key, k.claimed_at IS NOT NULL FROM keys_onetimeprekey k "
            "JOIN accounts_user u ON u.id = k.user_id WHERE u.email = ?",
            (email,),
        ).fetchall()
    finally:
        connection.close()
    return {key_id: (public_key, bool(claimed)) for key_id, public_key, claimed in rows}


def local_one_time_prekeys(person) -> dict[int, str]:
    """key id -> public key of every one-time prekey whose private key this browser holds."""
    return {
        r["value"]["keyId"]: r["value"]["publicKey"]
        for r in person.local_records("signalKeys")
        if r["name"].startswith("opk:") and r["value"].get("privateKey")
    }


def days_ago_ms(days: int) -> int:
    """A JavaScript timestamp (ms) `days` ago."""
    return int(time.time() * 1000) - days * DAY_MS


def incoming(person):
    return person.page.locator("#messages li.message.incoming .text")


def pushed_frames(page) -> list[dict]:
    """Every frame the server pushes to `page`'s sockets from now on (this page and reloads)."""
    frames: list[dict] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(json.loads(payload))))
    return frames


def test_one_time_prekeys_running_low_are_refilled_with_fresh_ids_when_the_server_says_so(people, messenger_server):
    alice = people("alice")
    frames = pushed_frames(alice.page)
    alice.register()
    bob = people("bob").register()
    alice.befriend(bob)
    assert alice.prekey_status()["count"] == BATCH
    registered = local_one_time_prekeys(alice)
    assert sorted(registered) == list(range(1, BATCH + 1))

    # Bob's browser claims her bundle until exactly SERVER_LOW are left: no push yet.
    drained = bob.claim_bundles(alice, BATCH - SERVER_LOW)
    assert [b["one_time_prekey"]["key_id"] for b in drained] == list(range(1, BATCH - SERVER_LOW + 1))
    assert alice.prekey_status()["count"] == SERVER_LOW

    # His first message takes one more: the server tells Alice, live, and her open page refills
    # (no reload: only the push can have started it).
    bob.open_chat(alice)
    bob.send("this takes one of your last prekeys")
    alice.open_chat(bob)
    expect(incoming(alice)).to_have_text(["this takes one of your last prekeys"])
    alice.wait_for_prekey_status(lambda s: s["count"] == BATCH, "a full supply after prekeys_low")
    lows = [f for f in frames if f.get("type") == "prekeys_low"]
    assert lows == [{"type": "prekeys_low", "device_id": 1, "remaining": SERVER_LOW - 1}]

    # The new keys have ids never used before (101...), and Alice holds the private half of
    # exactly what the server hands out: old ids were not reused, nothing was overwritten.
    used = BATCH - SERVER_LOW + 1  # 91 claimed
    new_ids = list(range(BATCH + 1, BATCH + used + 1))
    local = local_one_time_prekeys(alice)
    on_server = server_one_time_prekeys(messenger_server, alice.email)
    assert sorted(on_server) == list(range(1, BATCH + used + 1))
    unclaimed = sorted(key_id for key_id, (_, claimed) in on_server.items() if not claimed)
    assert unclaimed == list(range(used + 1, BATCH + 1)) + new_ids
    for key_id in unclaimed:
        assert local[key_id] == on_server[key_id][0]
    for key_id in range(1, BATCH + 1):
        if key_id in local:  # unchanged where still held
            assert local[key_id] == registered[key_id]
    # The key of Bob's session is gone (consumed); those merely claimed stay until used.
    assert used not in local
    assert alice.local_record("meta", "nextOneTimePrekeyId")["value"] == BATCH + used + 1
    assert alice.page_errors == []


def test_one_time_prekeys_used_up_while_away_are_refilled_at_sign_in(people, messenger_server):
    alice = people("alice").register()
    bob = people("bob").register()
    alice.befriend(bob)
    alice.sign_out()

    # While she is away, contacts take her supply below the client's minimum. It stays above
    # the server's push threshold, so no `prekeys_low` is ever sent: only the check at sign-in
    # can notice.
    taken = BATCH - CLIENT_MIN + 5  # 80, leaving 20
    bob.claim_bundles(alice, taken)
    assert SERVER_LOW <= BATCH - taken < CLIENT_MIN

    alice.login()
    alice.wait_ready()
    alice.wait_for_prekey_status(lambda s: s["count"] == BATCH, "a full supply after sign-in")
    local = local_one_time_prekeys(alice)
    on_server = server_one_time_prekeys(messenger_server, alice.email)
    new_ids = list(range(BATCH + 1, BATCH + taken + 1))
    assert sorted(on_server) == list(range(1, BATCH + taken + 1))
    for key_id in new_ids:
        assert local[key_id] == on_server[key_id][0]
    assert alice.local_record("meta", "nextOneTimePrekeyId")["value"] == BATCH + taken + 1

    # A new key works end to end: the next bundles hand out the rest of the old ones, then
    # 101, and a first message made with it decrypts.
    bob.claim_bundles(alice, BATCH - taken)
    with bob.page.expect_response(re.compile(r".*/api/v1/keys/bundles$")) as bundles:
        bob.open_chat(alice)
        bob.send("made with one of your new prekeys")
    assert bundles.value.json()["devices"][0]["one_time_prekey"]["key_id"] == BATCH + 1
    alice.open_chat(bob)
    expect(incoming(alice)).to_have_text(["made with one of your new prekeys"])
    assert BATCH + 1 not in local_one_time_prekeys(alice)


def test_the_signed_prekey_is_rotated_on_schedule_and_the_old_one_kept_for_the_grace_period(people, messenger_server):
    alice = people("alice").register()
    bob = people("bob").register()
    alice.befriend(bob)
    first = alice.local_record("meta", "signedPrekey")["value"]
    assert first["keyId"] == 1
    assert alice.prekey_status()["signed_prekey_id"] == 1
    # Bob's browser fetched her bundle (signed prekey 1) before she rotates; his first message,
    # made with it, reaches her only after the rotation (as a message waiting on the server would).
    old_bundle = bob.claim_bundles(alice, 1)[0]
    assert old_bundle["signed_prekey"]["key_id"] == 1

    # A week and a day later, Alice opens the messenger: a new signed prekey is published.
    alice.change_local_record("meta", "signedPrekey", {"createdAt": days_ago_ms(ROTATE_DAYS + 1)})
    alice.page.reload()
    alice.wait_ready()
    alice.wait_for_prekey_status(lambda s: s["signed_prekey_id"] == 2, "signed prekey 2 published")
    assert alice.local_record("meta", "signedPrekey")["value"]["keyId"] == 2
    old = alice.local_record("signalKeys", "spk:1")["value"]
    assert old["privateKey"]
    assert old["retiredAt"]
    assert "retiredAt" not in alice.local_record("signalKeys", "spk:2")["value"]
    assert bob.claim_bundles(alice, 1)[0]["signed_prekey"]["key_id"] == 2

    # The message made against the old bundle still decrypts.
    old_bundles = {
        "identity_key": old_bundle["identity_key"],
        "devices": [{"device_id": 1, **{k: old_bundle[k] for k in ("signed_prekey", "one_time_prekey")}}],
    }
    bob.page.route(re.compile(r".*/api/v1/keys/bundles$"), lambda route: route.fulfill(json=old_bundles))
    bob.open_chat(alice)
    bob.send("made with your old signed prekey")
    alice.open_chat(bob)
    expect(incoming(alice)).to_have_text(["made with your old signed prekey"])
    bob.page.unroute(re.compile(r".*/api/v1/keys/bundles$"))
    assert [e["signedPrekeyId"] for e in alice.local_records("ephemeralKeys")] == [1]

    # Past the grace period, the next start deletes the old private key and its replay guard.
    alice.change_local_record("signalKeys", "spk:1", {"retiredAt": days_ago_ms(GRACE_DAYS + 1)})
    alice.page.reload()
    alice.wait_ready()
    alice.wait_until(lambda: "spk:1" not in alice.local_key_names(), "the expired signed prekey deleted")
    assert "spk:2" in alice.local_key_names()
    assert alice.local_records("ephemeralKeys") == []
    assert alice.prekey_status()["signed_prekey_id"] == 2  # no needless rotation

    # The session does not depend on it: the conversation goes on both ways.
    alice.open_chat(bob)
    alice.send("still talking after the old key is gone")
    expect(incoming(bob)).to_have_text(["still talking after the old key is gone"])
    bob.send("and back")
    expect(alice.page.locator("#messages li.message.incoming .text").last).to_have_text("and back")
    assert alice.page_errors == []


def test_a_signed_prekey_whose_publication_went_unanswered_is_still_retired_and_deleted_in_time(people):
    alice = people("alice").register()
    bob = people("bob").register()
    alice.befriend(bob)

    # The rotation's PUT reaches the server (key 2 becomes current there) but the answer is lost.
    signed_prekey_url = re.compile(r".*/api/v1/keys/signed-prekey$")

    def answer_lost(route):
        route.fetch()
        route.abort("connectionreset")

    alice.page.route(signed_prekey_url, answer_lost)
    alice.change_local_record("meta", "signedPrekey", {"createdAt": days_ago_ms(ROTATE_DAYS + 1)})
    alice.page.reload()
    alice.wait_ready()
    expect(alice.page.locator("#notice-text")).to_contain_text("Could not update your encryption keys")
    alice.wait_for_prekey_status(lambda s: s["signed_prekey_id"] == 2, "signed prekey 2 current on the server")
    assert alice.local_record("meta", "signedPrekey")["value"]["keyId"] == 1
    # Key 2 is what contacts get now, so its private half must be there.
    bob.open_chat(alice)
    bob.send("made with the key whose answer was lost")
    alice.open_chat(bob)
    expect(incoming(alice)).to_have_text(["made with the key whose answer was lost"])

    # The next start rotates again (key 3); both earlier keys are retired, not only key 1.
    alice.page.unroute(signed_prekey_url)
    alice.page.reload()
    alice.wait_ready()
    alice.wait_for_prekey_status(lambda s: s["signed_prekey_id"] == 3, "signed prekey 3 published")
    assert alice.local_record("meta", "signedPrekey")["value"]["keyId"] == 3
    for name in ("spk:1", "spk:2"):
        assert alice.local_record("signalKeys", name)["value"].get("retiredAt"), f"{name} not retired"

    # Past the grace period neither is left.
    for name in ("spk:1", "spk:2"):
        alice.change_local_record("signalKeys", name, {"retiredAt": days_ago_ms(GRACE_DAYS + 1)})
    alice.page.reload()
    alice.wait_ready()
    alice.wait_until(lambda: not {"spk:1", "spk:2"} & alice.local_key_names(), "the retired signed prekeys deleted")
    assert "spk:3" in alice.local_key_names()
