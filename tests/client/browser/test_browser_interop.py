"""A Python client and a browser client (real Chromium, through the UI) talk to each other: the first
(prekey) message each way, replies on the ratchet, messages while the other side is offline, the same
safety number on both sides."""

import asyncio
import threading
from types import SimpleNamespace

import pytest
from playwright.sync_api import expect

from messenger_client import Client
from tests.browser.test_devices import read_safety_number
from tests.client.conftest import PASSPHRASE, PASSWORD
from tests.client.helpers import new_email

pytestmark = pytest.mark.browser


class ThreadedClient:
    """The async SDK on its own event loop in a thread: Playwright's sync API owns the main thread's loop."""

    def __init__(self, server_url: str, path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client: Client = self.run(self._open(server_url, str(path)))

    async def _open(self, server_url: str, path: str) -> Client:
        return Client.open(server_url, path, PASSPHRASE)

    def run(self, coroutine, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def wait_for_text(self, text: str, timeout: float = 15) -> None:
        async def wait():
            async for message in self.client.messages():
                if message.text == text:
                    return message

        return self.run(asyncio.wait_for(wait(), timeout), timeout + 5)

    def close(self) -> None:
        self.run(self.client.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def python_person(messenger_server, tmp_path):
    made = []

    def make(name: str) -> ThreadedClient:
        person = ThreadedClient(messenger_server.url, tmp_path / f"{name}.sqlite3")
        made.append(person)
        email = new_email(name)
        person.run(person.client.register(email, PASSWORD))
        person.email = email
        return person

    yield make
    for person in made:
        person.close()


def incoming(person, text: str):
    return person.page.locator("#messages li.message.incoming").filter(has_text=text)


def test_python_starts_the_conversation_with_a_browser_user_and_they_keep_talking(people, python_person):
    alice = people("alice").register()
    bob = python_person("bob")
    alice.request_contact(SimpleNamespace(email=bob.email))
    bob.run(bob.client.answer_request(alice.email))
    other = SimpleNamespace(email=bob.email)
    expect(alice.contact_button(other)).to_be_visible()

    # Python -> browser, the first (prekey) message, with the browser online.
    bob.run(bob.client.connect())
    alice.server.plaintexts.append("Hello from Python")
    sent = bob.run(bob.client.send(alice.email, "Hello from Python"))
    alice.open_chat(other)
    expect(incoming(alice, "Hello from Python")).to_have_count(1)
    # Opening the conversation sends a read receipt the Python client records.
    for _ in range(50):
        if {m.server_id: m.status for m in bob.client.history(alice.email)}[sent.id] == "read":
            break
        bob.run(asyncio.sleep(0.1))
    assert {m.server_id: m.status for m in bob.client.history(alice.email)}[sent.id] == "read"

    # Browser -> Python on the session Python started, then more turns both ways.
    alice.send("Hi Python, the browser here")
    bob.wait_for_text("Hi Python, the browser here")
    for i in range(3):
        alice.server.plaintexts.append(f"py {i}")
        bob.run(bob.client.send(alice.email, f"py {i}"))
        expect(incoming(alice, f"py {i}")).to_have_count(1)
        alice.send(f"js {i}")
        bob.wait_for_text(f"js {i}")
    expect(alice.outgoing("js 2").locator("[data-status]")).to_have_attribute("data-status", "delivered")

    # Both sides show the same safety number.
    ours = bob.run(bob.client.safety_number(alice.email))["safety_number"]
    assert read_safety_number(alice, other) == ours
    assert alice.page_errors == []


def test_browser_starts_the_conversation_and_each_side_receives_while_offline(people, python_person, tmp_path):
    alice = people("alice").register()
    bob = python_person("bob")
    bob.run(bob.client.add_contact(alice.email))
    other = SimpleNamespace(email=bob.email)
    alice.accept_request_from(other)

    # Browser -> Python, the first (prekey) message, while the Python client is offline (no socket).
    alice.open_chat(other)
    alice.send("Hello Python, you are offline")
    expect(alice.outgoing("Hello Python, you are offline").locator("[data-status]")).to_have_attribute(
        "data-status", "sent"
    )
    received = bob.run(bob.client.fetch())
    assert [m.text for m in received] == ["Hello Python, you are offline"]
    assert received[0].failure is None

    # Python -> browser while the browser is closed; it reads the message when it comes back.
    alice.go_offline()
    alice.server.plaintexts.append("Python writes while the browser is closed")
    bob.run(bob.client.send(alice.email, "Python writes while the browser is closed"))
    alice.come_back()
    alice.open_chat(other)
    expect(incoming(alice, "Python writes while the browser is closed")).to_have_count(1)

    # And the conversation goes on over the socket both ways.
    bob.run(bob.client.connect())
    alice.send("welcome back to both of us")
    bob.wait_for_text("welcome back to both of us")
    alice.server.plaintexts.append("indeed")
    bob.run(bob.client.send(alice.email, "indeed"))
    expect(incoming(alice, "indeed")).to_have_count(1)
    assert alice.page_errors == []
