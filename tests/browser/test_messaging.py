"""Two people register, become contacts and talk, in real Chromium through the UI."""

import base64
import json
import os
import re
import shutil
import sqlite3
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

    assert alice.dialogs == []
    assert bob.dialogs == []
    assert alice.page_errors == []
    assert bob.page_errors == []

    if os.environ.get("UPDATE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        alice.page.set_viewport_size({"width": 1200, "height": 760})
        alice.page.evaluate("document.getElementById('messages').scrollTop = 1e6")
        alice.page.screenshot(path=str(tmp_path / "desktop.png"))
        shutil.copy(tmp_path / "desktop.png", SCREENSHOTS / "conversation-desktop.png")
        bob.page.set_viewport_size({"width": 390, "height": 780})
        bob.page.evaluate("document.getElementById('messages').scrollTop = 1e6")
        bob.page.screenshot(path=str(tmp_path / "phone.png"))
        shutil.copy(tmp_path / "phone.png", SCREENSHOTS / "conversation-phone.png")


def test_declined_requests_and_removed_contacts_update_both_sides_live(people):
    alice = people("alice").register()
    bob = people("bob").register()
    carol = people("carol").register()
    alice.request_contact(carol)
    carol.page.get_by_role("button", name=f"Decline {alice.email}").click()
    expect(carol.page.locator("#incoming-section")).to_be_hidden()
    # A refusal is never revealed: Alice's request just stays pending.
    expect(alice.page.locator("#outgoing-list")).to_contain_text(carol.email)

    alice.befriend(bob)
    alice.open_chat(bob)
    page = alice.page
    page.get_by_role("button", name="Remove contact").click()
    page.get_by_role("button", name=f"Confirm: remove {bob.email}").click()
    expect(alice.contact_button(bob)).to_have_count(0)
    expect(bob.contact_button(alice)).to_have_count(0)
    # Asking for an unknown account shows the server's reason.
    alice.page.get_by_label("Add a contact by email").fill("nobody-here@example.test")
    alice.page.get_by_role("button", name="Send request").click()
    expect(alice.page.locator("#add-contact-error")).not_to_be_empty()


def test_messages_to_an_offline_contact_arrive_in_order_when_they_come_back_and_survive_a_reload(people):
    alice = people("alice").register()
    bob = people("bob").register()
    alice.befriend(bob)

    bob.go_offline()
    alice.open_chat(bob)
    texts = [f"while you were away #{i}" for i in range(1, 6)]
    for text in texts:
        alice.send(text)
    for text in texts:
        # Stored by the server, not delivered: Bob has no open socket.
        expect(alice.outgoing(text).locator("[data-status]")).to_have_attribute("data-status", "sent")

    bob.come_back()
    expect(bob.contact_button(alice).locator(".badge")).to_have_text("5")
    for text in texts:
        expect(alice.outgoing(text).locator("[data-status]")).to_have_attribute("data-status", "delivered")
    bob.open_chat(alice)
    expect(bob.messages()).to_have_count(5)
    assert bob.incoming_texts() == texts
    for text in texts:
        expect(alice.outgoing(text).locator("[data-status]")).to_have_attribute("data-status", "read")

    # The server cannot serve them again (acknowledged, bodies erased): history is local.
    bob.page.reload()
    bob.wait_ready()
    bob.open_chat(alice)
    expect(bob.messages()).to_have_count(5)
    assert bob.incoming_texts() == texts
    expect(bob.page.locator("#messages li.day").first).to_have_text("Today")

    alice.page.reload()
    alice.wait_ready()
    alice.open_chat(bob)
    expect(alice.messages()).to_have_count(5)
    expect(alice.page.locator("#messages li.message.outgoing [data-status='read']")).to_have_count(5)

    # And the conversation goes on from the restored session state.
    bob.send("back again")
    expect(alice.page.locator("#messages li.message.incoming .text")).to_have_text(["back again"])


def test_a_sender_who_was_offline_when_its_messages_were_read_sees_read_when_it_comes_back(people):
    alice = people("alice").register()
    bob = people("bob").register()
    alice.befriend(bob)
    bob.go_offline()
    alice.open_chat(bob)
    alice.send("read while you were away")
    expect(alice.outgoing("read while you were away").locator("[data-status]")).to_have_attribute("data-status", "sent")
    alice.go_offline()  # the receipts Bob's browser sends now are pushed to nobody

    bob.come_back()
    bob.open_chat(alice)
    expect(bob.page.locator("#messages li.message.incoming .text")).to_have_text(["read while you were away"])

    alice.come_back()
    alice.open_chat(bob)
    expect(alice.outgoing("read while you were away").locator("[data-status]")).to_have_attribute("data-status", "read")
    # Nothing is left to ask about: a read message leaves the `awaiting` index.
    assert [m for m in alice.local_records("messages") if "awaiting" in m] == []


def test_messages_written_while_the_socket_is_down_wait_in_the_outbox_and_go_out_on_reconnect(people):
    alice = people("alice").register()
    bob = people("bob").register()
    alice.befriend(bob)
    alice.open_chat(bob)
    bob.open_chat(alice)
    alice.send("before the outage")
    expect(bob.page.locator("#messages li.message.incoming")).to_have_count(1)

    alice.context.set_offline(True)
    expect(alice.page.locator("#connection")).not_to_have_text("Online")
    alice.send("written offline 1")
    alice.send("written offline 2")
    expect(alice.outgoing("written offline 2").locator("[data-status]")).to_have_attribute("data-status", "sending")
    bob.page.wait_for_timeout(500)
    expect(bob.page.locator("#messages li.message.incoming")).to_have_count(1)

    alice.context.set_offline(False)
    expect(alice.page.locator("#connection")).to_have_text("Online", timeout=30_000)
    expect(bob.page.locator("#messages li.message.incoming .text")).to_have_text(
        ["before the outage", "written offline 1", "written offline 2"]
    )
    expect(alice.outgoing("written offline 2").locator("[data-status]")).to_have_attribute("data-status", "read")


def test_a_message_the_server_failed_to_handle_is_marked_not_sent_and_goes_out_on_retry(people):
    alice = people("alice")
    failures = {"next_send": False}

    def route(ws):
        # Between Alice's page and the real server: one `send` answered with the error frame the
        # server sends when it could not handle a frame (a database failure, say).
        server = ws.connect_to_server()

        def from_page(message):
            frame = json.loads(message)
            if frame.get("type") == "send" and failures["next_send"]:
                failures["next_send"] = False
                detail = "The server could not handle this frame."
                ws.send(
                    json.dumps(
                        {"type": "error", "code": "server_error", "detail": detail, "client_id": frame["client_id"]}
                    )
                )
                return
            server.send(message)

        ws.on_message(from_page)

    alice.context.route_web_socket(re.compile(r"/ws/chat/$"), route)
    alice.register()
    bob = people("bob").register()
    alice.befriend(bob)
    alice.open_chat(bob)
    bob.open_chat(alice)

    failures["next_send"] = True
    alice.send("the first try fails")
    failed = alice.outgoing("the first try fails")
    expect(failed.locator("[data-status]")).to_have_attribute("data-status", "failed")
    expect(failed.locator(".status")).to_have_text("Not sent: The server could not handle this frame.")
    alice.send("the next one goes out")
    expect(bob.page.locator("#messages li.message.incoming .text")).to_have_text(["the next one goes out"])

    # Alice presses Retry just as Bob's message arrives and re-renders her conversation; the
    # button under her pointer must stay the same element, or the browser drops the click.
    retry = failed.get_by_role("button", name="Retry sending")
    box = retry.bounding_box()
    alice.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    alice.page.mouse.down()
    bob.send("meanwhile")
    expect(alice.page.locator("#messages li.message.incoming .text")).to_have_text(["meanwhile"])
    alice.page.mouse.up()
    expect(bob.page.locator("#messages li.message.incoming .text")).to_have_text(
        ["the next one goes out", "the first try fails"]
    )
    expect(failed.locator("[data-status]")).to_have_attribute("data-status", "read")
    expect(failed.get_by_role("button", name="Retry sending")).to_have_count(0)


def test_markup_in_a_message_is_shown_as_text_and_runs_nothing(people):
    alice = people("alice").register()
    bob = people("bob").register()
    alice.befriend(bob)
    alice.open_chat(bob)
    bob.open_chat(alice)
    payloads = ["<img src=x onerror=alert(1)>", "<script>alert(2)</script>", '"><svg onload=alert(3)>']
    for payload in payloads:
        alice.send(payload)
    expect(bob.page.locator("#messages li.message.incoming .text")).to_have_text(payloads)
    expect(alice.page.locator("#messages li.message.outgoing .text")).to_have_text(payloads)
    bob.page.wait_for_timeout(300)
    assert bob.page.locator("#messages img, #messages script, #messages svg").count() == 0
    assert alice.dialogs == []
    assert bob.dialogs == []
    assert alice.page_errors == []
    assert bob.page_errors == []


def _sqlite_contents(path: Path) -> tuple[str, bytes]:
    """The database as SQL text (WAL included) and the raw bytes of its files."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        text = "\n".join(connection.iterdump())
    finally:
        connection.close()
    raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*") if p.is_file())
    return text, raw


def test_neither_the_database_nor_the_server_log_holds_a_plaintext_or_a_private_key(people, messenger_server):
    alice = people("alice").register()
    bob = people("bob").register()
    alice.befriend(bob)
    alice.open_chat(bob)
    secret = "the launch code is 7204 — ünïcödé"
    alice.send(secret)
    bob.go_offline()  # a message that stays on the server, undelivered, while we look
    alice.send("still queued on the server: 5581")
    expect(alice.outgoing("5581").locator("[data-status]")).to_have_attribute("data-status", "sent")
    bob.come_back()
    bob.open_chat(alice)
    expect(bob.page.locator("#messages li.message.incoming")).to_have_count(2)
    bob.send("reply with its own secret 9931")
    expect(alice.page.locator("#messages li.message.incoming")).to_have_count(1)

    private_keys = alice.private_keys() + bob.private_keys()
    # Identity, signed prekey, 100 one-time prekeys (minus claimed), ratchet keys: all there.
    assert len(private_keys) > 150
    text, raw = _sqlite_contents(messenger_server.db_path)
    log = messenger_server.log_text()
    assert "/ws/chat/" in log, "the server log is captured"

    plaintexts = [p for p in messenger_server.plaintexts if len(p) >= 6]
    assert secret in plaintexts
    for plaintext in plaintexts:
        assert plaintext not in text, "plaintext found in the database"
        assert plaintext.encode() not in raw, "plaintext found in the database files"
        assert plaintext not in log, "plaintext found in the server log"
    for key in private_keys:
        assert key not in text, "private key found in the database"
        assert key.encode() not in raw, "private key found in the database files"
        assert base64.b64decode(key) not in raw, "raw private key bytes found in the database"
        assert key not in log, "private key found in the server log"

    # The app itself writes nothing to the console.
    for person in (alice, bob):
        assert [m for m in person.console_messages if m.split(":")[0] in ("log", "debug", "info")] == []


FORGE_ENVELOPE = """async ({to, identityKey}) => {
  // A broken (or malicious) sender: a well-formed prekey envelope that names Bob's one-time
  // prekey 5 but whose keys and MAC are random. It must fail to decrypt and consume nothing.
  const random = (n) => crypto.getRandomValues(new Uint8Array(n));
  const ik = Uint8Array.from(atob(identityKey), (c) => c.charCodeAt(0));
  const u32 = (v) => new Uint8Array([v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255]);
  const parts = [new Uint8Array([1, 1]), ik, random(32), u32(1), new Uint8Array([1]), u32(5),
                 random(32), u32(0), u32(0), random(16 + 32)];
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) { bytes.set(p, offset); offset += p.length; }
  const body = btoa(String.fromCharCode(...bytes));
  const csrf = decodeURIComponent(document.cookie.match(/csrftoken=([^;]+)/)[1]);
  const response = await fetch("/api/v1/messages/", {
    method: "POST",
    headers: {"Content-Type": "application/json", "X-CSRFToken": csrf},
    body: JSON.stringify({client_id: crypto.randomUUID(), to, kind: "prekey", body}),
  });
  return response.status;
}"""


def test_a_message_that_fails_to_decrypt_is_shown_as_such_and_consumes_no_one_time_prekey(people):
    alice = people("alice").register()
    bob = people("bob").register()
    alice.befriend(bob)
    bob.open_chat(alice)
    assert "opk:5" in bob.local_key_names()
    identity_key = alice.own_identity_key()
    assert alice.page.evaluate(FORGE_ENVELOPE, {"to": bob.email, "identityKey": identity_key}) == 201

    broken = bob.page.locator("#messages li.message.undecryptable")
    expect(broken).to_have_count(1)
    expect(broken).to_contain_text("could not be decrypted")
    assert "opk:5" in bob.local_key_names()

    # The app carries on: real messages both ways still work.
    alice.open_chat(bob)
    alice.send("a real one after the broken one")
    expect(bob.page.locator("#messages li.message.incoming .text").last).to_have_text("a real one after the broken one")
    bob.send("got it")
    expect(alice.page.locator("#messages li.message.incoming .text")).to_have_text(["got it"])
    # Acknowledged once stored: a reload does not bring the broken envelope back twice.
    bob.page.reload()
    bob.wait_ready()
    bob.open_chat(alice)
    expect(bob.page.locator("#messages li.message.undecryptable")).to_have_count(1)
    assert bob.page_errors == []
