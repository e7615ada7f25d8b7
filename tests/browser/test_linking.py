"""Linking a browser to an existing device of the account (docs/PROTOCOL.md section 18), through
both UIs: the new browser shows a link code and its QR code, the existing one answers it, both
show the same verification code, and only "They match" makes the new browser a device holding
the account's identity key. Contacts see no safety-number change. Also: "They don't match"
links nothing, a link ended elsewhere stops the new browser's polling, a scanned `#link=` URL
fills in the form (through a sign-in too) and leaves the address bar, a bad code is refused."""

import json
import re

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import add_server_device, link_browser

pytestmark = pytest.mark.browser


def requests_of(page) -> list[str]:
    """Every request `page` makes from now on, as "METHOD url body" lines."""
    seen: list[str] = []
    page.on("request", lambda request: seen.append(f"{request.method} {request.url} {request.post_data or ''}"))
    return seen


def pushed_frames(page) -> list[dict]:
    """Every frame the server pushes to `page`'s sockets from now on."""
    frames: list[dict] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(json.loads(payload))))
    return frames


def device_items(page):
    return page.locator("#device-list li.device")


def identity_record(person, other) -> dict:
    (record,) = [r for r in person.local_records("identities") if r["email"] == other.email]
    return record


def open_link_code(page) -> str:
    """On the set-up screen: "Link to my existing device", and the link code it shows."""
    page.get_by_role("button", name="Link to my existing device").click()
    field = page.locator("#link-code")
    expect(field).to_have_value(re.compile(r"^sm-link:1:"))
    return field.input_value()


def test_a_new_browser_linked_to_an_existing_device_holds_the_account_key_and_contacts_see_no_change(people):
    alice = people("alice").register()
    bob = people("bob").register()
    alice.befriend(bob)
    alice.open_chat(bob)
    alice.send("before the link")
    bob.open_chat(alice)
    expect(bob.page.locator("#messages li.message.incoming .text")).to_have_text(["before the link"])
    bob_trusts = identity_record(bob, alice)
    bob_frames = pushed_frames(bob.page)
    bob.page.reload()  # a socket opened from now on is watched
    bob.wait_ready()
    bob.open_chat(alice)

    # Alice signs in on a second browser: it has no keys, and linking is the first way offered.
    laptop = people("alice-laptop", email=alice.email)
    laptop.login()
    setup = laptop.page.locator("#device-setup")
    expect(setup).to_be_visible()
    expect(setup.get_by_role("button").first).to_have_text("Link to my existing device")
    expect(setup.get_by_role("button", name="Start over", exact=True)).to_be_visible()
    laptop_requests = requests_of(laptop.page)
    alice_requests = requests_of(alice.page)

    code = open_link_code(laptop.page)
    qr = laptop.page.get_by_role("img", name="QR code of the link code")
    expect(qr).to_be_visible()
    assert qr.evaluate("svg => svg.tagName") == "svg"
    assert len(qr.locator("path").get_attribute("d")) > 100
    expect(laptop.page.locator("#link-expiry")).to_contain_text("The code works until")
    expect(laptop.page.get_by_role("button", name="Copy")).to_be_visible()

    verification = link_browser(alice.page, laptop.page)
    assert re.fullmatch(r"\d{3} \d{3}", verification)

    # The laptop is device 2 with the account's identity key and fresh prekeys of its own.
    assert laptop.local_record("meta", "deviceId")["value"] == 2
    assert laptop.own_identity_key() == alice.own_identity_key()
    me = laptop.api_get("/api/v1/auth/me")
    assert me["device"] == {"id": 2, "name": "Chromium on Linux"}
    assert laptop.prekey_status()["identity_key"] == alice.own_identity_key()
    expect(device_items(laptop.page)).to_have_count(2)
    expect(laptop.page.locator("#device-list li.device[data-device-id='2']")).to_have_attribute("data-current", "true")

    # The existing browser's list shows both at once (devices_changed; its dialog said so).
    expect(device_items(alice.page)).to_have_count(2)
    expect(alice.page.locator("#device-list li.device[data-device-id='2'] .device-name")).to_have_text(
        "Chromium on Linux"
    )

    # Bob is told Alice's devices changed, and that is all: no safety-number change, his record
    # of Alice's key untouched.
    bob.wait_until(
        lambda: {"type": "devices_changed", "email": alice.email} in bob_frames, "devices_changed reaches Bob"
    )
    assert identity_record(bob, alice) == bob_trusts
    expect(bob.page.locator("#identity-warning")).to_be_hidden()
    expect(bob.contact_button(alice)).not_to_contain_text("Safety number changed")

    # Only the link id, public keys and the sealed box went out: no private key, no link code in
    # a URL; nothing secret in either page or in the server log.
    for person, sent in ((alice, alice_requests), (laptop, laptop_requests)):
        text = "\n".join(sent)
        assert not any(key in text for key in person.private_keys()), person.name
        assert not any("sm-link" in line.split(" ")[1] for line in sent), person.name
        page_text = person.page.content()
        assert not any(key in page_text for key in person.private_keys()), person.name
    offer = json.loads(next(line for line in alice_requests if "/devices/links/offer" in line).split(" ", 2)[2])
    assert set(offer) == {"link_id", "ephemeral_key", "ciphertext"}
    assert offer["link_id"] == code.split(":")[2]
    log = alice.server.log_text()
    assert not any(key in log for key in alice.private_keys() + laptop.private_keys())


def test_codes_that_do_not_match_link_nothing_and_a_link_ended_elsewhere_stops_the_new_browser(people):
    alice = people("alice").register()
    laptop = people("alice-laptop", email=alice.email)
    laptop.login()
    code = open_link_code(laptop.page)
    link_id = code.split(":")[2]

    alice.page.get_by_role("button", name="Link a new device").click()
    dialog = alice.page.get_by_role("dialog", name="Link a new device")
    dialog.get_by_label("Link code").fill(code)
    dialog.get_by_role("button", name="Link", exact=True).click()
    expect(dialog.locator("#link-offered-code")).to_have_text(re.compile(r"^\d{3} \d{3}$"))
    expect(laptop.page.locator("#link-verification")).to_have_text(dialog.locator("#link-offered-code").text_content())

    laptop.page.get_by_role("button", name="They don't match").click()
    expect(laptop.page.locator("#link-error")).to_contain_text("the codes did not match, and nothing was linked")
    expect(laptop.page.locator("#link-verification")).to_be_hidden()
    expect(laptop.page.get_by_role("button", name="New code")).to_be_visible()
    # The link is gone from the server, nothing was registered and no key was written here.
    poll = alice.api("POST", "/api/v1/devices/links/poll", {"link_id": link_id})
    assert poll["status"] == 404
    assert [d["id"] for d in alice.api_get("/api/v1/devices")["devices"]] == [1]
    assert laptop.local_key_names() == set()

    # A new code is a new link; ended from the other device, the new browser stops and says so.
    laptop.page.get_by_role("button", name="New code").click()
    expect(laptop.page.locator("#link-code")).to_have_value(re.compile(r"^sm-link:1:"))
    second = laptop.page.locator("#link-code").input_value()
    assert second != code
    polls = []
    laptop.page.on("request", lambda request: polls.append(request.url) if request.url.endswith("/poll") else None)
    assert alice.api("POST", "/api/v1/devices/links/cancel", {"link_id": second.split(":")[2]})["status"] == 204
    expect(laptop.page.locator("#link-error")).to_contain_text("expired or was cancelled")
    expect(laptop.page.locator("#link-code")).to_be_hidden()
    stopped = len(polls)
    # Nothing to wait for here: what is checked is that nothing happens during one more polling
    # period (2 s) after the end.
    laptop.page.wait_for_timeout(2500)
    assert len(polls) == stopped

    # Starting over is still there (and the laptop stays without keys until it is chosen).
    laptop.page.get_by_role("button", name="Start over", exact=True).click()
    expect(laptop.page.get_by_label("Your password, to confirm")).to_be_visible()
    expect(laptop.page.locator("#link-panel")).to_be_hidden()

    # Three links open already (the server's limit): the fourth is refused with a way to retry.
    for _ in range(3):
        assert laptop.api("POST", "/api/v1/devices/links")["status"] == 201
    laptop.page.get_by_role("button", name="Link to my existing device").click()
    expect(laptop.page.locator("#link-error")).to_contain_text("too many link codes open")
    expect(laptop.page.get_by_role("button", name="New code")).to_be_visible()
    expect(laptop.page.locator("#start-over-panel")).to_be_hidden()
    assert laptop.local_key_names() == set()


def test_a_link_refused_at_the_last_step_writes_nothing_and_can_be_tried_again(people, messenger_server):
    alice = people("alice").register()
    for number in range(2, 6):  # the account's cap: 5 devices
        add_server_device(messenger_server, alice.email, f"Device {number}")
    laptop = people("alice-laptop", email=alice.email)
    laptop.login()
    open_link_code(laptop.page)
    alice.page.reload()
    alice.wait_ready()
    code = laptop.page.locator("#link-code").input_value()
    alice.page.get_by_role("button", name="Link a new device").click()
    dialog = alice.page.get_by_role("dialog", name="Link a new device")
    dialog.get_by_label("Link code").fill(code)
    dialog.get_by_role("button", name="Link", exact=True).click()
    expect(laptop.page.locator("#link-verification")).to_have_text(dialog.locator("#link-offered-code").text_content())
    laptop.page.get_by_role("button", name="They match").click()
    expect(laptop.page.locator("#link-error")).to_contain_text("as many devices as it may have")
    expect(laptop.page.get_by_role("button", name="New code")).to_be_visible()
    assert laptop.local_key_names() == set()
    assert laptop.local_record("meta", "deviceId") is None
    assert laptop.api("GET", "/api/v1/auth/me")["body"]["device"] is None

    # One device unlinked on the existing browser: a new code goes through.
    dialog.get_by_role("button", name="Done").click()
    alice.page.get_by_role("button", name="Unlink Device 5").click()
    alice.page.get_by_role("dialog", name="Unlink a device").get_by_role("button", name="Unlink Device 5").click()
    expect(device_items(alice.page)).to_have_count(4)
    laptop.page.get_by_role("button", name="New code").click()
    expect(laptop.page.locator("#link-code")).to_have_value(re.compile(r"^sm-link:1:"))
    link_browser(alice.page, laptop.page)
    assert laptop.own_identity_key() == alice.own_identity_key()
    expect(device_items(alice.page)).to_have_count(5)


def test_a_scanned_link_url_fills_in_the_form_through_a_sign_in_and_a_bad_code_is_refused(people):
    alice = people("alice").register()
    laptop = people("alice-laptop", email=alice.email)
    laptop.login()
    code = open_link_code(laptop.page)

    # The phone's camera opens the QR code's URL; Alice has to sign in first on this browser.
    alice.sign_out()
    sent = requests_of(alice.page)
    alice.page.goto(f"/#link={code}")
    alice.page.wait_for_url(re.compile(r"/login"))
    alice.login()
    alice.wait_ready()
    dialog = alice.page.get_by_role("dialog", name="Link a new device")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Link code")).to_have_value(code)
    expect(dialog.locator("#link-opened")).to_contain_text("Link only if you made it just now")
    assert "#" not in alice.page.url
    assert "sm-link" not in alice.page.url
    assert not any("sm-link" in line for line in sent), "the code never reaches the server"

    dialog.get_by_role("button", name="Link", exact=True).click()
    expect(dialog.locator("#link-offered-code")).to_have_text(re.compile(r"^\d{3} \d{3}$"))
    expect(laptop.page.locator("#link-verification")).to_have_text(dialog.locator("#link-offered-code").text_content())
    dialog.get_by_role("button", name="Done").click()

    # Bad codes: refused in the browser with a sentence, nothing sent; a well-formed code of no
    # open link is refused by the server.
    offers = []
    alice.page.on("request", lambda request: offers.append(request) if request.url.endswith("/offer") else None)
    alice.page.get_by_role("button", name="Link a new device").click()
    field = dialog.get_by_label("Link code")
    expect(field).to_have_value("")
    expect(dialog.locator("#link-opened")).to_be_hidden()
    for bad in ("hello", code.replace("sm-link:1:", "sm-link:2:"), code[:-4], f"https://evil.example/?x#link={code}x"):
        field.fill(bad)
        dialog.get_by_role("button", name="Link", exact=True).click()
        expect(dialog.locator("#link-form-error")).to_contain_text("not a link code")
        expect(dialog.get_by_role("button", name="Link", exact=True)).to_be_enabled()
    assert offers == []
    field.fill(code)  # answered already
    dialog.get_by_role("button", name="Link", exact=True).click()
    expect(dialog.locator("#link-form-error")).to_contain_text("Another device has already answered")
    prefix, version, _, key = code.split(":")
    unknown = f"{prefix}:{version}:AAAAAAAAAAAAAAAAAAAAAA==:{key}"
    field.fill(unknown)
    dialog.get_by_role("button", name="Link", exact=True).click()
    expect(dialog.locator("#link-form-error")).to_contain_text("expired or was cancelled")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert [d["id"] for d in alice.api_get("/api/v1/devices")["devices"]] == [1]
