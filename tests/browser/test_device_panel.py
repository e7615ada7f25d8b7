"""The browser as one device of an account (docs/PROTOCOL.md part II, sections 14, 15 and 19):
the number it keeps per account and sends when signing in, the Devices panel (this browser
marked, rename, unlink), and a browser that learns it was unlinked: signed out with a notice, its
keys gone from IndexedDB, its history kept.

These tests are about the panel, not linking (tests/browser/test_linking.py): a second device is
made on the server (helpers.add_server_device) and a session of it is opened through the API,
with the account's password and its number."""

import json
import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD
from tests.browser.helpers import add_server_device

pytestmark = pytest.mark.browser

UNLINKED_NOTICE = (
    "This browser was unlinked from your account. Sign in to link it again from one of your devices (or to start over)."
)


def bodies_sent(page, path: str) -> list[dict]:
    """The JSON bodies this page sends to `path` from now on (reloads and navigations included)."""
    sent: list[dict] = []

    def on_request(request):
        if request.url.endswith(path) and request.method in ("POST", "PUT", "PATCH"):
            sent.append(json.loads(request.post_data or "null"))

    page.on("request", on_request)
    return sent


def pushed_frames(page) -> list[dict]:
    """Every frame the server pushes to `page`'s sockets from now on."""
    frames: list[dict] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(json.loads(payload))))
    return frames


def device_items(page):
    return page.locator("#device-list li.device")


def device_item(page, device_id: int):
    return page.locator(f"#device-list li.device[data-device-id='{device_id}']")


def account_records(person, account: str) -> dict[str, list[dict]]:
    """Store -> the records of `account` in this browser's IndexedDB."""
    return {
        store: [r for r in records if r["account"] == account] for store, records in person.every_local_record().items()
    }


def account_key(person) -> str:
    me = person.api("GET", "/api/v1/auth/me")["body"]
    return f"{me['id']}:{me['email']}"


def sign_in_as_device(person, email: str, device_id: int) -> dict:
    """Opens a session of `email`'s device `device_id` in `person`'s browser, through the API."""
    person.page.goto("/login")  # sets the CSRF cookie
    answer = person.api("POST", "/api/v1/auth/login", {"email": email, "password": PASSWORD, "device_id": device_id})
    assert answer["status"] == 200, answer
    assert answer["body"]["device"]["id"] == device_id, answer
    return answer["body"]


def test_the_panel_marks_this_browser_and_a_rename_persists_across_reloads(people):
    alice = people("alice")
    registered = bodies_sent(alice.page, "/api/v1/auth/register")
    logins = bodies_sent(alice.page, "/api/v1/auth/login")
    alice.register()

    # Registration named the device after the browser and the sign-in that followed sent its number.
    assert registered[0]["device_name"] == "Chromium on Linux"
    assert [body["device_id"] for body in logins] == [1]
    assert alice.local_record("meta", "deviceId")["value"] == 1

    page = alice.page
    expect(device_items(page)).to_have_count(1)
    this = device_item(page, 1)
    expect(this).to_have_attribute("data-current", "true")
    expect(this.locator(".device-name")).to_have_text("Chromium on Linux")
    expect(this.locator(".device-tag")).to_have_text("This browser")
    expect(this.locator(".device-dates")).to_contain_text("Added")
    expect(this.locator(".device-dates")).to_contain_text("Last seen now")
    expect(page.locator("#devices-summary")).to_have_text("1 of at most 5 devices.")

    # An empty name is refused here; the server's own refusal (an invisible character) is shown.
    this.get_by_role("button", name="Rename Chromium on Linux (this browser)").click()
    field = this.get_by_label("New name for Chromium on Linux (this browser)")
    expect(field).to_be_focused()
    field.fill("   ")
    this.get_by_role("button", name="Save").click()
    expect(this.locator(".device-rename .error")).to_have_text("Enter a name for the device.")
    field.fill("Work\u202elaptop")
    this.get_by_role("button", name="Save").click()
    expect(this.locator(".device-rename .error")).to_contain_text("control or invisible characters")
    expect(this.locator(".device-name")).to_have_text("Chromium on Linux")
    # Cancel leaves the name as it was.
    this.get_by_role("button", name="Cancel").click()
    expect(this.locator(".device-rename")).to_be_hidden()
    this.get_by_role("button", name="Rename Chromium on Linux (this browser)").click()
    field.fill("  Work laptop <b>x</b> ")
    field.press("Enter")
    expect(this.locator(".device-name")).to_have_text("Work laptop <b>x</b>")
    expect(this.locator(".device-rename")).to_be_hidden()

    page.reload()
    alice.wait_ready()
    expect(device_item(page, 1).locator(".device-name")).to_have_text("Work laptop <b>x</b>")
    expect(device_item(page, 1).locator(".device-name b")).to_have_count(0)
    assert alice.api("GET", "/api/v1/devices")["body"]["devices"][0]["name"] == "Work laptop <b>x</b>"
    assert alice.page_errors == []


def test_a_second_device_appears_and_is_unlinked_from_the_panel_then_this_browser_unlinks_itself(
    people, messenger_server
):
    alice = people("alice").register()
    assert add_server_device(messenger_server, alice.email, "Old phone") == 2
    # The server made it without telling anyone (no link yet): the list is read again on a reload.
    alice.page.reload()
    alice.wait_ready()
    page = alice.page
    expect(device_items(page)).to_have_count(2)
    phone = device_item(page, 2)
    expect(phone).to_have_attribute("data-current", "false")
    expect(phone.locator(".device-name")).to_have_text("Old phone")
    expect(phone.locator(".device-tag")).to_be_hidden()
    expect(phone.locator(".device-dates")).to_contain_text("Last seen not yet")
    expect(page.locator("#devices-summary")).to_have_text("2 of at most 5 devices.")

    # A second tab of this browser hears of the change from the server (devices_changed).
    second = alice.new_tab()
    second.goto("/")
    alice.wait_ready(second)
    expect(device_items(second)).to_have_count(2)

    # Unlinking asks first; Cancel does nothing.
    phone.get_by_role("button", name="Unlink Old phone").click()
    dialog = page.get_by_role("dialog", name="Unlink a device")
    expect(dialog).to_contain_text("“Old phone” is signed out at once")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(device_items(page)).to_have_count(2)

    phone.get_by_role("button", name="Unlink Old phone").click()
    dialog.get_by_role("button", name="Unlink Old phone").click()
    expect(dialog).to_be_hidden()
    expect(device_items(page)).to_have_count(1)
    expect(device_items(second)).to_have_count(1)
    assert [d["id"] for d in alice.api("GET", "/api/v1/devices")["body"]["devices"]] == [1]
    expect(page.locator("#connection")).to_have_text("Online")
    second.close()

    # Unlinking this browser itself: it leaves the account, erases its keys, and says so.
    account = account_key(alice)
    this = device_item(page, 1)
    this.get_by_role("button", name="Unlink Chromium on Linux (this browser)").click()
    expect(dialog).to_contain_text("This browser is signed out at once")
    dialog.get_by_role("button", name="Unlink this browser").click()
    page.wait_for_url(re.compile(r"/login\?reason=unlinked$"))
    expect(page.locator("#login-info")).to_have_text(UNLINKED_NOTICE)
    records = account_records(alice, account)
    assert records["signalKeys"] == []
    assert records["signalSessions"] == []
    assert not any(r["name"] == "deviceId" for r in records["meta"])
    assert alice.api("GET", "/api/v1/auth/me")["status"] == 401


def test_this_browser_unlinked_by_another_session_is_signed_out_with_a_notice_and_its_keys_are_gone(
    people, messenger_server
):
    alice = people("alice").register()
    bob = people("bob")
    bob_frames = pushed_frames(bob.page)
    bob.register()
    alice.befriend(bob)
    alice.open_chat(bob)
    alice.send("before the unlink")
    bob.open_chat(alice)
    expect(bob.page.locator("#messages li.message.incoming .text")).to_have_text(["before the unlink"])
    bob.send("a reply")
    expect(alice.page.locator("#messages li.message.incoming .text")).to_have_text(["a reply"])

    account = account_key(alice)
    before = account_records(alice, account)
    assert before["signalKeys"]
    assert before["signalSessions"]
    private_keys = alice.private_keys_of(account)
    history = sorted(m["text"] for m in before["messages"])
    assert history == ["a reply", "before the unlink"]

    # Her other device (made on the server, signed in through the API) unlinks this browser.
    phone_id = add_server_device(messenger_server, alice.email, "Phone")
    phone = people("alice-phone", email=alice.email)
    sign_in_as_device(phone, alice.email, phone_id)
    assert phone.api("DELETE", "/api/v1/devices/1")["status"] == 204

    # Its socket is closed (4403): the browser learns why (401 `device_removed`) and signs out,
    # with the notice, without a loop.
    alice.page.wait_for_url(re.compile(r"/login\?reason=unlinked$"))
    expect(alice.page.locator("#login-info")).to_have_text(UNLINKED_NOTICE)
    after = account_records(alice, account)
    assert after["signalKeys"] == []
    assert after["signalSessions"] == []
    assert after["ephemeralKeys"] == []
    assert not any(r["name"] in ("deviceId", "nextOneTimePrekeyId", "signedPrekey") for r in after["meta"])
    dumped = json.dumps(after)
    assert not any(key in dumped for key in private_keys)
    # The decrypted history, the contact and the identity trusted for it are kept as they were.
    assert sorted(m["text"] for m in after["messages"]) == history
    assert after["identities"] == before["identities"]
    assert after["contacts"] == before["contacts"]

    # Bob heard that Alice's devices changed: quietly, no safety-number warning.
    alice.wait_until(
        lambda: any(f.get("type") == "devices_changed" and f.get("email") == alice.email for f in bob_frames),
        "bob receives devices_changed",
    )
    expect(bob.page.locator("#identity-warning")).to_be_hidden()
    expect(bob.contact_button(alice)).not_to_contain_text("Safety number changed")
    expect(bob.page.locator("#notice")).to_be_hidden()

    # Signing in again sends no number (no keys left) and offers to set this browser up.
    logins = bodies_sent(alice.page, "/api/v1/auth/login")
    alice.login()
    assert [body["device_id"] for body in logins] == [None]
    expect(alice.page.locator("#device-explanation")).to_contain_text("no encryption keys")
    assert alice.page_errors == []


def test_a_sign_in_sends_the_stored_number_and_one_for_a_database_from_before_devices(people, messenger_server):
    alice = people("alice")
    logins = bodies_sent(alice.page, "/api/v1/auth/login")
    alice.register()
    alice.sign_out()
    alice.login()
    alice.wait_ready()
    assert [body["device_id"] for body in logins] == [1, 1]

    # A database written before devices existed: keys, but no number. It is device 1, and the
    # number is written down at the next sign-in.
    account = account_key(alice)
    alice.sign_out()
    alice.page.evaluate(
        """async (account) => {
          const storage = await import("/static/js/storage.js");
          const store = new storage.AccountStore(await storage.openDatabase(), account);
          await store.write([{delete: "meta", key: ["deviceId"]}]);
          await storage.closeDatabase();
        }""",
        account,
    )
    assert alice.local_record("meta", "deviceId") is None
    alice.login()
    alice.wait_ready()
    assert logins[-1]["device_id"] == 1
    assert alice.local_record("meta", "deviceId")["value"] == 1

    # A new browser holds nothing of the account: it sends null and is offered the set-up, which
    # starts over as the next device, named after the browser; the first browser is removed.
    phone_id = add_server_device(messenger_server, alice.email, "Phone")
    other = people("alice-new-browser", email=alice.email)
    other_logins = bodies_sent(other.page, "/api/v1/auth/login")
    identity_resets = bodies_sent(other.page, "/api/v1/keys/identity")
    other.login()
    assert [body["device_id"] for body in other_logins] == [None]
    expect(other.page.locator("#device-explanation")).to_contain_text("no encryption keys")
    other.start_over()
    other.wait_ready()
    assert identity_resets[0]["device_name"] == "Chromium on Linux"
    assert other.local_record("meta", "deviceId")["value"] == phone_id + 1
    expect(device_items(other.page)).to_have_count(1)
    expect(device_item(other.page, phone_id + 1)).to_have_attribute("data-current", "true")

    # The first browser's sessions ended with the start over (its socket closed, the session not
    # refreshed); signing in there again sends its number, learns it was unlinked, and erases
    # its keys.
    alice.page.wait_for_url(re.compile(r"/login\?reason=expired$"))
    alice.submit_login()
    expect(alice.page.locator("#login-info")).to_have_text(UNLINKED_NOTICE)
    assert logins[-1]["device_id"] == 1
    assert alice.local_key_names() == set()
    assert alice.page_errors == []
    assert other.page_errors == []


def test_a_session_not_bound_to_this_browsers_device_goes_back_to_sign_in_once_and_keeps_the_keys(people):
    """A pending session in a browser that holds an active device's keys (a client that sent no
    number would get one): the app neither uses those keys for it nor erases them, and the
    sign-in page binds the next session to this browser's device. No loop."""
    alice = people("alice").register()
    logins = bodies_sent(alice.page, "/api/v1/auth/login")
    keys = alice.local_key_names()
    answer = alice.api("POST", "/api/v1/auth/login", {"email": alice.email, "password": PASSWORD, "device_id": None})
    assert answer["status"] == 200
    assert answer["body"]["device"] is None
    alice.page.goto("/")
    alice.page.wait_for_url(re.compile(r"/login\?reason=expired$"))
    assert alice.local_key_names() == keys
    alice.login()
    alice.wait_ready()
    assert logins[-1]["device_id"] == 1
    expect(device_item(alice.page, 1)).to_have_attribute("data-current", "true")
    assert alice.page_errors == []
