"""Two people register, become contacts and talk, in real Chromium through the UI."""

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def test_two_people_register_become_contacts_and_chat_with_delivered_and_read_receipts(people, tmp_path):
    alice = people("alice").register()
    bob = people("bob").register()

    alice.request_contact(bob)
    # Bob sees the request arrive live (socket event), without reloading.
    expect(bob.page.get_by_role("button", name=f"Accept {alice.email}")).to_be_visible()
    expect(alice.page.locator("#outgoing-list")).to_contain_text(bob.email)
    bob.accept_request_from(alice)
    # Alice's lists follow the answer in real time.
    expect(alice.contact_button(bob)).to_be_visible()
    expect(alice.page.locator("#outgoing-section")).to_be_hidden()

    alice.open_chat(bob)
    alice.send("Hello Bob, this is the first message")
    first = alice.outgoing("Hello Bob, this is the first message")
    expect(first).to_be_visible()
    # Bob's conversation is not open: the message is delivered, not read, and counted as unread.
    expect(first.locator("[data-status]")).to_have_attribute("data-status", "delivered")
    expect(bob.contact_button(alice).locator(".badge")).to_have_text("1")

    bob.open_chat(alice)
    expect(bob.messages()).to_have_count(1)
    assert bob.incoming_texts() == ["Hello Bob, this is the first message"]
    expect(first.locator("[data-status]")).to_have_attribute("data-status", "read")
    expect(bob.contact_button(alice).locator(".badge")).to_have_count(0)

    bob.send("Hi Alice!\nSecond line")
    reply = alice.page.locator("#messages li.message.incoming")
    expect(reply).to_have_count(1)
    expect(reply.locator(".text")).to_have_text("Hi Alice!\nSecond line")
    expect(bob.outgoing("Hi Alice!").locator("[data-status]")).to_have_attribute("data-status", "read")

    # Several turns: the ratchet keeps going both ways.
    for i in range(3):
        alice.send(f"ping {i}")
        expect(bob.page.locator("#messages li.message.incoming").filter(has_text=f"ping {i}")).to_have_count(1)
        bob.send(f"pong {i}")
        expect(alice.page.locator("#messages li.message.incoming").filter(has_text=f"pong {i}")).to_have_count(1)

    # The typing indicator reaches the other side.
    alice.page.get_by_label("Message", exact=True).type("typing…")
    expect(bob.page.locator("#conversation-typing")).to_contain_text("typing")
    alice.page.get_by_label("Message", exact=True).fill("")

    # Shift+Enter makes a new line, Enter sends.
    box = alice.page.get_by_label("Message", exact=True)
    box.type("line one")
    box.press("Shift+Enter")
    box.type("line two")
    alice.server.plaintexts.append("line one\nline two")
    box.press("Enter")
    expect(bob.page.locator("#messages li.message.incoming .text").last).to_have_text("line one\nline two")

    assert alice.dialogs == [] and bob.dialogs == []
    assert alice.page_errors == [] and bob.page_errors == []

    if os.environ.get("UPDATE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        alice.page.set_viewport_size({"width": 1200, "height": 760})
        alice.page.screenshot(path=str(tmp_path / "desktop.png"))
        shutil.copy(tmp_path / "desktop.png", SCREENSHOTS / "conversation-desktop.png")
