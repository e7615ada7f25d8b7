"""Devices and accounts: a new browser for an existing account, two accounts in one browser,
transparent session refresh."""

import json
import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def read_safety_number(person, other) -> str:
    page = person.page
    person.open_chat(other)
    page.get_by_role("button", name="Safety number", exact=True).click()
    number = page.locator("#safety-number")
    expect(number).to_have_text(re.compile(r"^(\d{5} ){11}\d{5}$"))
    text = number.text_content()
    page.get_by_role("button", name="Close").click()
    return text


def test_a_new_browser_for_an_account_warns_its_contacts_and_changes_the_safety_number(people):
    alice = people("alice").register()
    bob = people("bob").register()
    alice.befriend(bob)
    alice.open_chat(bob)
    alice.send("from the first browser")
    bob.open_chat(alice)
    expect(bob.page.locator("#messages li.message.incoming")).to_have_count(1)
    bob.send("reply to the first browser")
    expect(alice.page.locator("#messages li.message.incoming")).to_have_count(1)

    before = read_safety_number(bob, alice)
    assert read_safety_number(alice, bob) == before  # both sides compute the same number
    bob.open_chat(alice)

    # Alice signs in on a new browser: it has no keys for her account and says so.
    alice2 = people("alice-new-browser", email=alice.email)
    alice2.login()
    expect(alice2.page.locator("#device-explanation")).to_contain_text("no encryption keys")
    alice2.start_over(password="wrong password!!")
    expect(alice2.page.locator("#device-error")).not_to_be_empty()
    alice2.start_over()
    alice2.wait_ready()

    # Bob is warned live, in the open conversation and in the contact list.
    warning = bob.page.locator("#identity-warning")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("safety number")
    expect(bob.contact_button(alice)).to_contain_text("Safety number changed")
    after = read_safety_number(bob, alice)
    assert after != before
    expect(warning).to_be_visible()

    # Nothing goes to the new key before Bob accepts it.
    bob.send("held until I accept")
    held = bob.outgoing("held until I accept").locator("[data-status]")
    expect(held).to_have_attribute("data-status", "held")
    alice2.open_chat(bob)
    alice2.page.wait_for_timeout(500)
    expect(alice2.messages()).to_have_count(0)

    bob.page.get_by_role("button", name="I understand, send to the new key").click()
    expect(warning).to_be_hidden()
    expect(alice2.page.locator("#messages li.message.incoming .text")).to_have_text(["held until I accept"])
    expect(held).to_have_attribute("data-status", "read")
    assert read_safety_number(alice2, bob) == after

    alice2.send("hello from the new browser")
    expect(bob.page.locator("#messages li.message.incoming .text").last).to_have_text("hello from the new browser")

    # Setting up the new browser removed the old one from the account and signed it out. Signing
    # in there again sends its device number, gets no device back: the old browser learns it was
    # unlinked, erases its keys, and the next sign-in sets it up anew.
    alice.page.reload()
    expect(alice.page.get_by_role("status")).to_contain_text("session ended")
    alice.submit_login()
    expect(alice.page.locator("#login-info")).to_contain_text("This browser was unlinked from your account")
    assert alice.local_key_names() == set()
    alice.login()
    expect(alice.page.locator("#device-explanation")).to_contain_text("no encryption keys")


def test_two_accounts_in_one_browser_keep_their_keys_and_history_apart(people):
    alice = people("alice").register()
    bob = people("bob").register()
    alice.befriend(bob)
    alice.open_chat(bob)
    alice.send("alice's secret")
    expect(alice.outgoing("alice's secret").locator("[data-status]")).to_have_attribute("data-status", "delivered")

    # Carol registers in Alice's browser (same IndexedDB database).
    alice.sign_out()
    carol = people("carol")
    carol.close()
    carol.context, carol.page = alice.context, alice.page
    carol.register()
    expect(carol.page.locator("#contact-list li")).to_have_count(0)
    expect(carol.page.locator("#no-contacts")).to_be_visible()

    # Alice comes back to her browser: her keys and history are still hers, no set-up needed.
    carol.sign_out()
    alice.login()
    alice.wait_ready()
    alice.open_chat(bob)
    expect(alice.page.locator("#messages li.message.outgoing .text")).to_have_text(["alice's secret"])
    bob.open_chat(alice)
    bob.send("still works")
    expect(alice.page.locator("#messages li.message.incoming .text")).to_have_text(["still works"])


def accounts_in(records: dict[str, list[dict]]) -> dict[str, set[str]]:
    """Store name -> the account keys (`<user id>:<email>`) that have records in it."""
    return {store: {record["account"] for record in items} for store, items in records.items() if items}


def test_signing_out_keeps_this_browsers_data_unless_the_user_chooses_to_erase_it(people):
    alice = people("alice").register()
    bob = people("bob").register()
    alice.befriend(bob)
    alice.open_chat(bob)
    alice.send("alice's history")
    expect(alice.outgoing("alice's history").locator("[data-status]")).to_have_attribute("data-status", "delivered")
    bob.open_chat(alice)
    bob.send("bob's reply")
    expect(alice.page.locator("#messages li.message.incoming .text")).to_have_text(["bob's reply"])

    # The dialog explains both choices before anything happens; Cancel does nothing.
    alice.page.locator("#logout").click()
    dialog = alice.page.get_by_role("dialog", name="Sign out")
    expect(dialog).to_contain_text("cannot be recovered")
    expect(dialog).to_contain_text("new device")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(alice.page.locator("#connection")).to_have_text("Online")

    # A plain sign-out keeps everything: signing in again needs no set-up and shows the history.
    alice.sign_out()
    alice.login()
    alice.wait_ready()
    alice.open_chat(bob)
    expect(alice.page.locator("#messages li.message .text")).to_have_text(["alice's history", "bob's reply"])

    # Carol uses the same browser, then Alice erases hers.
    alice.sign_out()
    carol = people("carol")
    carol.close()
    carol.context, carol.page = alice.context, alice.page
    carol.register()
    carol.sign_out()
    before = alice.every_local_record()
    accounts = {key for keys in accounts_in(before).values() for key in keys}
    (alice_key,) = [key for key in accounts if key.endswith(f":{alice.email}")]
    (carol_key,) = [key for key in accounts if key.endswith(f":{carol.email}")]
    assert {"messages", "signalKeys", "signalSessions", "identities", "contacts"} <= {
        store for store, keys in accounts_in(before).items() if alice_key in keys
    }
    alice_private_keys = alice.private_keys_of(alice_key)
    assert alice_private_keys

    alice.login()
    alice.wait_ready()
    # A second tab of hers is open: it hears of the erase, erases too (so nothing it was writing
    # survives) and leaves for the sign-in page.
    second = alice.new_tab()
    second.goto("/")
    alice.wait_ready(second)
    alice.sign_out(erase=True)
    expect(alice.page.locator("#login-info")).to_contain_text("erased")
    expect(second.locator("#login-info")).to_contain_text("erased")
    second.close()

    after = alice.every_local_record()
    assert all(alice_key not in keys for keys in accounts_in(after).values())
    dumped = json.dumps(after)
    assert "alice's history" not in dumped
    assert "bob's reply" not in dumped
    assert not any(key in dumped for key in alice_private_keys)
    assert not any(alice.email in name or alice.email in value for name, value in alice.web_storage().items())
    # Carol's records are untouched, and she signs in without setting anything up.
    assert {store: [r for r in records if r["account"] == carol_key] for store, records in after.items()} == {
        store: [r for r in records if r["account"] == carol_key] for store, records in before.items()
    }
    carol.login()
    carol.wait_ready()
    carol.sign_out()

    # Alice back in this browser: it is a new device for her now.
    alice.login()
    expect(alice.page.locator("#device-explanation")).to_contain_text("no encryption keys")


def test_an_expired_access_token_is_refreshed_without_the_user_noticing(people):
    alice = people("alice").register()
    bob = people("bob").register()
    second_tab = alice.new_tab()
    second_tab.goto("/")
    alice.wait_ready(second_tab)

    alice.context.clear_cookies(name="access_token")
    # A REST call gets 401, refreshes (once, under a Web Lock shared by both tabs) and retries.
    alice.request_contact(bob)
    expect(bob.page.get_by_role("button", name=f"Accept {alice.email}")).to_be_visible()

    # The socket reconnects without an access token: the server closes it with 4401, the client
    # refreshes and reconnects.
    bob.accept_request_from(alice)
    alice.context.clear_cookies(name="access_token")
    alice.context.set_offline(True)
    expect(alice.page.locator("#connection")).not_to_have_text("Online")
    alice.context.set_offline(False)
    expect(alice.page.locator("#connection")).to_have_text("Online", timeout=30_000)
    expect(second_tab.locator("#connection")).to_have_text("Online", timeout=30_000)
    for _ in range(50):
        if any(c["name"] == "access_token" for c in alice.context.cookies()):
            break
        alice.page.wait_for_timeout(200)
    assert any(c["name"] == "access_token" for c in alice.context.cookies())

    # Two tabs of one account share one ratchet per contact: no fork, whichever tab sends.
    alice.open_chat(bob)
    alice.open_chat(bob, second_tab)
    bob.open_chat(alice)
    bob.send("to both of your tabs")
    for page in (alice.page, second_tab):
        expect(page.locator("#messages li.message.incoming .text")).to_have_text(["to both of your tabs"])
    # Each is on the server before the next is typed (two tabs sending at the same moment have no
    # order between them: the first tab's send may take longer, e.g. reading the device lists).
    turns = [("from the second tab", second_tab), ("from the first tab", alice.page), ("second tab again", second_tab)]
    for text, page in turns:
        alice.send(text, page)
        status = alice.outgoing(text, page).locator("[data-status]")
        expect(status).to_have_attribute("data-status", re.compile(r"^(sent|delivered|read)$"))
    expect(bob.page.locator("#messages li.message.incoming .text")).to_have_text(
        ["from the second tab", "from the first tab", "second tab again"]
    )
    bob.send("still in sync")
    for page in (alice.page, second_tab):
        expect(page.locator("#messages li.message.incoming .text").last).to_have_text("still in sync")
    expect(alice.page.locator("#messages li.undecryptable")).to_have_count(0)
    expect(bob.page.locator("#messages li.undecryptable")).to_have_count(0)

    # Both tabs reloading at once with no access token: neither is signed out.
    alice.context.clear_cookies(name="access_token")
    alice.page.evaluate("location.reload()")
    second_tab.evaluate("location.reload()")
    alice.wait_ready()
    alice.wait_ready(second_tab)
    assert "/login" not in alice.page.url
    assert "/login" not in second_tab.url


def test_a_click_on_a_contact_is_not_lost_when_the_list_changes_under_the_pointer(people):
    """Right after sign-in the contact list changes several times (contacts synced from the
    server, unread counters, identity checks, typing). A click whose button was replaced between
    the press and the release was lost: the browser fires `click` only when press and release hit
    the same element (or a common ancestor still in the page). The press here lands, Bob's typing
    changes Alice's contact list, then the release: the conversation must open."""
    alice = people("alice").register()
    bob = people("bob").register()
    alice.befriend(bob)
    bob.open_chat(alice)

    button = alice.contact_button(bob)
    box = button.bounding_box()
    alice.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    alice.page.mouse.down()
    bob.page.get_by_label("Message", exact=True).type("hi")
    expect(button).to_contain_text("typing")
    alice.page.mouse.up()
    expect(alice.page.locator("#conversation-title")).to_have_text(bob.email)
