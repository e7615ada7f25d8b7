"""Issue #15's scenario end to end, in real Chromium: Alice links a second browser from her first by
its link code; Bob (a contact) sees no safety-number change; his message appears in both of
Alice's browsers, hers sent from one appears as sent in the other, reading on one clears the
unread count on the other, and unlinking one stops delivery to it at once."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import link_device

pytestmark = pytest.mark.browser


def incoming(person, text, page=None):
    return (page or person.page).locator("#messages li.message.incoming").filter(has_text=text)


def test_two_linked_browsers_of_one_account_and_a_contact(people):
    alice = people("alice").register()
    bob = people("bob").register()
    alice.befriend(bob)
    bob.open_chat(alice)
    bob.send("before the laptop")  # Bob's browser now trusts Alice's identity key
    expect(alice.contact_button(bob).locator(".badge")).to_have_text("1")
    [trusted_before] = [r for r in bob.local_records("identities") if r["email"] == alice.email]

    laptop = people("alice-laptop", email=alice.email)
    assert link_device(alice, laptop) == 2

    # Bob's message reaches both browsers, unread in both.
    bob.send("to both browsers")
    expect(alice.contact_button(bob).locator(".badge")).to_have_text("2")
    expect(laptop.contact_button(bob).locator(".badge")).to_have_text("1")  # linked after the first
    # Read in the first browser: the laptop's unread count clears too (read_elsewhere).
    alice.open_chat(bob)
    expect(incoming(alice, "to both browsers")).to_have_count(1)
    expect(laptop.contact_button(bob).locator(".badge")).to_have_count(0)
    laptop.open_chat(bob)
    expect(incoming(laptop, "to both browsers")).to_have_count(1)

    # Alice writes from the laptop: Bob gets it, and the first browser shows it as sent by her.
    laptop.send("from the laptop")
    expect(incoming(bob, "from the laptop")).to_have_count(1)
    expect(alice.outgoing("from the laptop")).to_be_visible()
    expect(laptop.outgoing("from the laptop").locator("[data-status]")).to_have_attribute("data-status", "read")

    # Bob was never warned: the safety number is per account and did not change.
    expect(bob.page.locator("#identity-warning")).to_be_hidden()
    [trusted_after] = [r for r in bob.local_records("identities") if r["email"] == alice.email]
    assert trusted_after["identityKey"] == trusted_before["identityKey"]
    assert "changedTo" not in trusted_after

    # The first browser unlinks the laptop: it is signed out at once, and Bob's next message
    # reaches the first browser only.
    alice.page.locator("#device-list li.device[data-device-id='2']").get_by_role(
        "button", name=re.compile(r"^Unlink ")
    ).click()
    dialog = alice.page.get_by_role("dialog", name="Unlink a device")
    dialog.get_by_role("button", name=re.compile(r"^Unlink ")).click()
    laptop.page.wait_for_url(re.compile(r"/login\?reason=unlinked$"))
    bob.send("after the unlink")
    expect(incoming(alice, "after the unlink")).to_have_count(1)
    expect(bob.outgoing("after the unlink").locator("[data-status]")).to_have_attribute("data-status", "read")
    assert [d["id"] for d in alice.api("GET", "/api/v1/devices")["body"]["devices"]] == [1]
    assert laptop.local_key_names() == set()  # its keys were erased when it learned it was unlinked
    for person in (alice, bob, laptop):
        assert person.page_errors == [], person.name
