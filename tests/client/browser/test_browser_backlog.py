"""A backlog of more than the server's 1,000 ids per receipt frame, sent by a Python client to a
browser user who is away: the browser takes it in batches, and marks all of it read in frames the
server accepts, so the sender sees "read" on every message."""

import json
from types import SimpleNamespace

import pytest
from playwright.sync_api import expect

from tests.client.browser.test_browser_interop import python_person  # noqa: F401 - fixture

pytestmark = pytest.mark.browser

BACKLOG = 1_100
MAX_IDS_PER_FRAME = 1000  # chat/validation.py


def test_a_backlog_above_a_thousand_is_marked_read_in_frames_the_server_takes(people, python_person):  # noqa: F811
    alice = people("alice").register()
    bob = python_person("bob")
    alice.request_contact(SimpleNamespace(email=bob.email))
    bob.run(bob.client.answer_request(alice.email))
    other = SimpleNamespace(email=bob.email)
    expect(alice.contact_button(other)).to_be_visible()

    # Alice closes her tab; Bob writes a lot meanwhile.
    alice.page.close()

    async def send_all():
        await bob.client.connect()
        return [(await bob.client.send(alice.email, f"backlog {i}")).id for i in range(BACKLOG)]

    sent = bob.run(send_all(), timeout=300)

    # She comes back, with every frame her page sends recorded.
    frames: list[dict] = []
    page = alice.page = alice.new_tab()
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: frames.append(json.loads(payload))))
    page.goto("/")
    alice.wait_ready(page)
    expect(alice.contact_button(other, page).locator(".badge")).to_have_text(str(BACKLOG), timeout=60_000)
    alice.open_chat(other, page)
    expect(page.locator("#messages li.message.incoming .text").last).to_have_text(f"backlog {BACKLOG - 1}")
    expect(alice.contact_button(other, page).locator(".badge")).to_have_count(0)

    def all_read() -> bool:
        async def statuses():
            return [m.status for m in bob.client.history(alice.email, limit=BACKLOG + 10) if m.direction == "out"]

        return bob.run(statuses()) == ["read"] * BACKLOG

    alice.wait_until(all_read, "Bob sees every message read", timeout_ms=60_000)

    reads = [frame["ids"] for frame in frames if frame.get("type") == "read"]
    acks = [frame["ids"] for frame in frames if frame.get("type") == "ack"]
    assert len(reads) >= 2
    assert all(1 <= len(ids) <= MAX_IDS_PER_FRAME for ids in reads)
    assert sorted(i for ids in reads for i in ids) == sorted(sent)
    assert all(1 <= len(ids) <= MAX_IDS_PER_FRAME for ids in acks)
    assert set(sent) <= {i for ids in acks for i in ids}
    expect(page.locator("#notice")).to_be_hidden()
    assert not alice.page_errors
