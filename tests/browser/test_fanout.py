"""Protocol version 2 in the browser (docs/PROTOCOL.md section 17): a message goes to every device
of the recipient and to the sender's other devices, reading on one device clears the unread count
on the others, and a sender that missed a device change learns it from `device_mismatch`.

The second devices are browser contexts linked to the account through both browsers' linking
screens (helpers.link_device, section 18)."""

import json
import re

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import link_device

pytestmark = pytest.mark.browser


def incoming(person, text):
    return person.page.locator("#messages li.message.incoming").filter(has_text=text)


def test_a_message_reaches_every_device_of_both_accounts_and_reading_on_one_clears_the_others(people):
    alice = people("alice").register()
    bob = people("bob").register()
    alice.befriend(bob)
    bob2 = people("bob-phone", email=bob.email)
    assert link_device(bob, bob2) == 2
    alice2 = people("alice-laptop", email=alice.email)
    assert link_device(alice, alice2) == 2

    alice.open_chat(bob)
    alice.send("hello to every device of Bob")
    sent = alice.outgoing("hello to every device of Bob")
    expect(sent.locator("[data-status]")).to_have_attribute("data-status", "delivered")
    # Both of Bob's devices have it, unread.
    expect(bob.contact_button(alice).locator(".badge")).to_have_text("1")
    expect(bob2.contact_button(alice).locator(".badge")).to_have_text("1")
    # Alice's other device files it as her own message to Bob, not as an unread one.
    expect(alice2.contact_button(bob).locator(".badge")).to_have_count(0)
    alice2.open_chat(bob)
    mirrored = alice2.outgoing("hello to every device of Bob")
    expect(mirrored).to_be_visible()
    expect(alice2.page.locator("#messages li.message.incoming")).to_have_count(0)

    # Bob reads it on his first device: the phone's unread count clears (read_elsewhere), and
    # both of Alice's devices see it read.
    bob.open_chat(alice)
    expect(incoming(bob, "hello to every device of Bob")).to_have_count(1)
    expect(bob2.contact_button(alice).locator(".badge")).to_have_count(0)
    expect(sent.locator("[data-status]")).to_have_attribute("data-status", "read")
    expect(mirrored.locator("[data-status]")).to_have_attribute("data-status", "read")

    # The phone answers: both of Alice's devices get it; Bob's first device shows it as his own.
    bob2.open_chat(alice)
    expect(incoming(bob2, "hello to every device of Bob")).to_have_count(1)
    bob2.send("answer from the phone")
    expect(incoming(alice, "answer from the phone")).to_have_count(1)
    expect(incoming(alice2, "answer from the phone")).to_have_count(1)
    expect(bob.outgoing("answer from the phone")).to_be_visible()
    expect(bob2.outgoing("answer from the phone").locator("[data-status]")).to_have_attribute("data-status", "read")

    # And the other way round from Alice's second device, on the sessions the first message made.
    alice2.send("and from the laptop")
    expect(incoming(bob, "and from the laptop")).to_have_count(1)
    expect(incoming(bob2, "and from the laptop")).to_have_count(1)
    expect(alice.outgoing("and from the laptop")).to_be_visible()

    # One session per device pair: Alice's first browser with Bob's two devices and her laptop.
    sessions = {(r["email"], r["device"]) for r in alice.local_records("signalSessions")}
    assert sessions == {(bob.email, 1), (bob.email, 2), (alice.email, 2)}
    for person in (alice, alice2, bob, bob2):
        assert person.page_errors == [], person.name
        assert person.dialogs == [], person.name


def test_a_sender_that_missed_a_device_change_sends_after_one_mismatch_round(people):
    alice = people("alice").register()
    bob = people("bob").register()
    alice.befriend(bob)
    bob2 = people("bob-phone", email=bob.email)
    phone = link_device(bob, bob2)

    # Alice's socket loses every devices_changed (as if it was down then); the errors it gets
    # are recorded.
    errors: list[dict] = []

    def route(ws):
        server = ws.connect_to_server()
        ws.on_message(lambda message: server.send(message))

        def from_server(message):
            frame = json.loads(message)
            if frame.get("type") == "error":
                errors.append(frame)
            if frame.get("type") != "devices_changed":
                ws.send(message)

        server.on_message(from_server)

    alice.page.route_web_socket(re.compile(r"/ws/"), route)
    alice.page.reload()
    alice.wait_ready()
    alice.open_chat(bob)
    alice.send("before the change")
    expect(incoming(bob2, "before the change")).to_have_count(0)  # not open there: counted
    expect(bob2.contact_button(alice).locator(".badge")).to_have_text("1")
    expect(bob.contact_button(alice).locator(".badge")).to_have_text("1")

    # Bob unlinks the phone and links a tablet; Alice's browser hears of neither.
    assert bob.api("DELETE", f"/api/v1/devices/{phone}")["status"] == 204
    bob3 = people("bob-tablet", email=bob.email)
    assert link_device(bob, bob3) == 3

    alice.send("after the change")
    expect(alice.outgoing("after the change").locator("[data-status]")).to_have_attribute("data-status", "delivered")
    assert [e["code"] for e in errors] == ["device_mismatch"]
    assert errors[0]["missing"] == {"to": [3], "own": []}
    assert errors[0]["extra"] == {"to": [2], "own": []}
    expect(bob3.contact_button(alice).locator(".badge")).to_have_text("1")
    bob3.open_chat(alice)
    expect(incoming(bob3, "after the change")).to_have_count(1)
    bob.open_chat(alice)
    expect(incoming(bob, "after the change")).to_have_count(1)
    # The session with the removed phone is gone; the one with the tablet is new.
    sessions = {(r["email"], r["device"]) for r in alice.local_records("signalSessions")}
    assert sessions == {(bob.email, 1), (bob.email, 3)}
    assert alice.local_records("outbox") == []
    assert alice.page_errors == []


def test_a_device_that_was_away_learns_on_its_return_what_was_read_on_another(people):
    alice = people("alice").register()
    bob = people("bob").register()
    alice.befriend(bob)
    bob2 = people("bob-phone", email=bob.email)
    link_device(bob, bob2)

    alice.open_chat(bob)
    alice.send("read it anywhere")
    expect(bob2.contact_button(alice).locator(".badge")).to_have_text("1")
    # The phone goes away with the message unread; Bob reads it on his first device meanwhile,
    # so the phone misses the read_elsewhere push.
    bob2.go_offline()
    bob.open_chat(alice)
    expect(incoming(bob, "read it anywhere")).to_have_count(1)
    expect(alice.outgoing("read it anywhere").locator("[data-status]")).to_have_attribute("data-status", "read")
    # Back, the phone asks where its unread messages stand (section 17.3) and clears the count.
    bob2.come_back()
    expect(bob2.contact_button(alice).locator(".badge")).to_have_count(0)
    (record,) = [r for r in bob2.local_records("messages") if r["direction"] == "in"]
    assert "unread" not in record
    assert bob2.page_errors == []
