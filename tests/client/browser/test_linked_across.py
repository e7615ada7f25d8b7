"""A terminal client and a browser as two devices of one account (docs/PROTOCOL.md section 18),
linked through their own screens: the terminal linked to an account that lives in the browser,
and a browser linked to an account that lives in the terminal. A contact's message reaches both,
a message sent from one shows as sent on the other, and the contact sees no safety-number change."""

import asyncio
import base64
import re
from types import SimpleNamespace

import pytest
from playwright.sync_api import expect

from messenger_client.errors import NotSetUp
from tests.browser.conftest import PASSWORD as BROWSER_PASSWORD
from tests.client.browser.test_browser_interop import ThreadedClient, incoming
from tests.client.helpers import new_email

pytestmark = pytest.mark.browser


@pytest.fixture
def terminal(messenger_server, tmp_path):
    made = []

    def make(name: str) -> ThreadedClient:
        person = ThreadedClient(messenger_server.url, tmp_path / f"{name}.sqlite3")
        made.append(person)
        return person

    yield make
    for person in made:
        person.close()


def sent_elsewhere(person: ThreadedClient, peer: str, text: str) -> None:
    """Waits until the terminal's history holds `text` as a message it sent to `peer` (a copy of
    a message sent from the account's other device)."""

    async def wait():
        while not any(m.direction == "out" and m.text == text for m in person.client.history(peer)):
            await asyncio.sleep(0.05)

    person.run(asyncio.wait_for(wait(), 15), 20)


def test_the_terminal_client_links_to_an_account_that_lives_in_the_browser(people, terminal):
    alice = people("alice").register()
    bob = people("bob").register()
    alice.befriend(bob)
    term = terminal("alice-terminal")
    with pytest.raises(NotSetUp):  # signed in (a pending session), not a device yet: what linking starts from
        term.run(term.client.login(alice.email, BROWSER_PASSWORD))

    link = term.run(term.client.open_link())
    alice.page.get_by_role("button", name="Link a new device").click()
    dialog = alice.page.get_by_role("dialog", name="Link a new device")
    dialog.get_by_label("Link code").fill(link.code)
    dialog.get_by_role("button", name="Link", exact=True).click()
    shown = dialog.locator("#link-offered-code")
    expect(shown).to_have_text(re.compile(r"^\d{3} \d{3}$"))
    opening = term.run(term.client.wait_for_link_offer(link))
    assert opening.verification_code == shown.text_content()
    assert term.run(term.client.complete_link(link, opening, device_name="Terminal")) == 2
    expect(dialog.locator("#link-linked")).to_contain_text("is now linked to your account")
    dialog.get_by_role("button", name="Done").click()
    term.run(term.client.connect())

    bob.open_chat(alice)
    bob.send("to the browser and the terminal")
    term.wait_for_text("to the browser and the terminal")
    alice.open_chat(bob)
    expect(incoming(alice, "to the browser and the terminal")).to_have_count(1)

    term.run(term.client.send(bob.email, "from the terminal"))
    expect(incoming(bob, "from the terminal")).to_have_count(1)
    expect(alice.outgoing("from the terminal")).to_be_visible()
    alice.send("from the browser")
    expect(incoming(bob, "from the browser")).to_have_count(1)
    sent_elsewhere(term, bob.email, "from the browser")

    # One identity key for both devices: Bob trusts the one he first saw, and was never warned.
    expect(bob.page.locator("#identity-warning")).to_be_hidden()
    [trusted] = [r for r in bob.local_records("identities") if r["email"] == alice.email]
    assert trusted["identityKey"] == base64.b64encode(term.client.identity_key).decode()
    assert "changedTo" not in trusted
    assert alice.page_errors == []
    assert bob.page_errors == []


def test_a_browser_links_to_an_account_that_lives_in_the_terminal(people, terminal):
    carol = terminal("carol")
    email = new_email("carol")
    carol.run(carol.client.register(email, BROWSER_PASSWORD))
    bob = people("bob").register()
    carol.run(carol.client.add_contact(bob.email))
    bob.accept_request_from(SimpleNamespace(email=email))
    carol.run(carol.client.connect())

    browser = people("carol-browser", email=email)
    browser.login()
    browser.page.get_by_role("button", name="Link to my existing device").click()
    code = browser.page.locator("#link-code")
    expect(code).to_have_value(re.compile(r"^sm-link:1:"))
    offer = carol.run(carol.client.accept_link(code.input_value()))
    expect(browser.page.locator("#link-verification")).to_have_text(offer.verification_code)
    browser.page.get_by_role("button", name="They match").click()
    browser.wait_ready()

    contact = SimpleNamespace(email=email)
    bob.open_chat(contact)
    bob.send("to the terminal and the browser")
    carol.wait_for_text("to the terminal and the browser")
    browser.open_chat(bob)
    expect(incoming(browser, "to the terminal and the browser")).to_have_count(1)

    browser.send("from carol's browser")
    expect(incoming(bob, "from carol's browser")).to_have_count(1)
    sent_elsewhere(carol, bob.email, "from carol's browser")
    carol.run(carol.client.send(bob.email, "from carol's terminal"))
    expect(incoming(bob, "from carol's terminal")).to_have_count(1)
    expect(browser.outgoing("from carol's terminal")).to_be_visible()
    expect(bob.page.locator("#identity-warning")).to_be_hidden()
    assert browser.page_errors == []
    assert bob.page_errors == []
