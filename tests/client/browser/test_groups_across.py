"""A terminal user and browser users in one group (docs/PROTOCOL.md part III): the terminal
client creates it, everyone reads everyone, the browser renames it and the terminal learns the
new name, and the terminal removes a browser member, whose browser then gets nothing more."""

import asyncio
from types import SimpleNamespace

import pytest
from playwright.sync_api import expect

from tests.client.browser.test_browser_interop import incoming, python_person  # noqa: F401 - fixture

pytestmark = pytest.mark.browser


def wait_for_group_text(person, group_id: str, text: str) -> None:
    """Waits until the terminal's history of the group holds `text`."""

    async def wait():
        while not any(m.text == text for m in person.client.history(group=group_id)):
            await asyncio.sleep(0.05)

    person.run(asyncio.wait_for(wait(), 15), 20)


def test_a_terminal_user_and_browser_users_share_a_group(people, python_person):  # noqa: F811
    alice = people("alice").register()
    carol = people("carol").register()
    bob = python_person("bob")
    for browser in (alice, carol):
        browser.request_contact(SimpleNamespace(email=bob.email))
        bob.run(bob.client.answer_request(browser.email))
        expect(browser.contact_button(SimpleNamespace(email=bob.email))).to_be_visible()
    bob.run(bob.client.connect())

    group = bob.run(bob.client.create_group("Terminal and browsers", [alice.email, carol.email]))
    alice.server.plaintexts.append("from the terminal")
    bob.run(bob.client.send_group(group.id, "from the terminal"))
    alice.open_group("Terminal and browsers")
    expect(incoming(alice, "from the terminal").locator(".sender")).to_have_text(bob.email)
    carol.open_group("Terminal and browsers")
    expect(incoming(carol, "from the terminal")).to_have_count(1)

    alice.send("from a browser")
    wait_for_group_text(bob, group.id, "from a browser")
    expect(incoming(carol, "from a browser")).to_have_count(1)

    # A rename in the browser reaches the terminal (the name is end-to-end encrypted).
    dialog = alice.members_dialog()
    dialog.get_by_label("Group name").fill("Renamed in a browser")
    dialog.get_by_role("button", name="Rename").click()
    expect(alice.page.locator("#conversation-title")).to_have_text("Renamed in a browser")
    dialog.get_by_role("button", name="Close").click()

    async def renamed():
        while bob.client.group_name(group.id) != "Renamed in a browser":
            await asyncio.sleep(0.05)

    bob.run(asyncio.wait_for(renamed(), 15), 20)
    expect(carol.page.locator("#conversation-title")).to_have_text("Renamed in a browser")

    # The terminal (the creator, admin) removes Carol; what follows does not reach her.
    bob.run(bob.client.remove_member(group.id, carol.email))
    expect(carol.page.locator("#composer-input")).to_be_disabled()
    alice.server.plaintexts.append("after carol")
    bob.run(bob.client.send_group(group.id, "after carol"))
    expect(incoming(alice, "after carol")).to_have_count(1)
    expect(incoming(carol, "after carol")).to_have_count(0)
    assert alice.page_errors == []
    assert carol.page_errors == []
