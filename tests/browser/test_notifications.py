"""Desktop notifications: opt-in, only while the tab is hidden, naming the sender and never the
message text.

Headless Chromium reports every page as visible (another page in front, a minimised window:
`document.visibilityState` stays "visible"), so an init script lets the test hide the tab the
way the Page Visibility API would: `document.hidden`/`visibilityState` and a `visibilitychange`
event. It also records each `new Notification(...)` while still making the real one.
"""

import json

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

TAB_VISIBILITY_AND_NOTIFICATIONS = """(() => {
  let hidden = false;
  Object.defineProperty(Document.prototype, "hidden", { configurable: true, get: () => hidden });
  Object.defineProperty(Document.prototype, "visibilityState", {
    configurable: true,
    get: () => (hidden ? "hidden" : "visible"),
  });
  window.__setTabHidden = (value) => {
    hidden = value;
    document.dispatchEvent(new Event("visibilitychange"));
  };
  const RealNotification = window.Notification;
  const shown = [];
  window.__notifications = shown;
  window.__clickNotification = (i) => shown[i].instance.onclick(new Event("click"));
  window.Notification = class extends RealNotification {
    constructor(title, options = {}) {
      super(title, options);
      shown.push({ title, options: JSON.parse(JSON.stringify(options)), instance: this });
    }
  };
})();"""

TOGGLE = "Desktop notification for a new message while this tab is hidden"


def set_tab_hidden(person, hidden: bool) -> None:
    person.page.evaluate("(hidden) => window.__setTabHidden(hidden)", hidden)


def notifications(person) -> list[dict]:
    return person.page.evaluate("window.__notifications.map(({title, options}) => ({title, options}))")


def wait_for_notifications(person, count: int) -> list[dict]:
    person.page.wait_for_function("(count) => window.__notifications.length >= count", arg=count)
    return notifications(person)


def status_of(person, text: str):
    return person.outgoing(text).locator("[data-status]")


def test_a_hidden_tab_shows_a_notification_without_the_text_only_once_opted_in(people, messenger_server):
    alice = people("alice")
    alice.context.add_init_script(script=TAB_VISIBILITY_AND_NOTIFICATIONS)
    alice.register()
    bob = people("bob").register()
    alice.befriend(bob)
    bob.open_chat(alice)
    toggle = alice.page.get_by_label(TOGGLE)
    badge = alice.contact_button(bob).locator(".badge")
    expect(toggle).not_to_be_checked()

    # Opting in while the browser blocks notifications for the site: it stays off and says why.
    toggle.click()
    expect(alice.page.locator("#notice-text")).to_contain_text("Notifications are blocked")
    expect(toggle).not_to_be_checked()
    alice.page.get_by_role("button", name="Dismiss this message").click()

    # The site may notify, but Alice has not opted in: a message to the hidden tab stays silent.
    # (The badge is drawn in the same synchronous run that would make the notification, so
    # once it shows, none was made.)
    alice.context.grant_permissions(["notifications"], origin=messenger_server.url)
    set_tab_hidden(alice, True)
    bob.send("before opting in")
    expect(badge).to_have_text("1")
    assert notifications(alice) == []
    set_tab_hidden(alice, False)

    toggle.check()
    expect(toggle).to_be_checked()

    # Opted in, but the tab is visible: no notification.
    bob.send("while you look at the list")
    expect(badge).to_have_text("2")
    assert notifications(alice) == []

    # Hidden: one notification, naming the sender, without the text.
    set_tab_hidden(alice, True)
    secret = "the secret is 4711"
    bob.send(secret)
    expect(badge).to_have_text("3")
    (shown,) = wait_for_notifications(alice, 1)
    assert shown["title"] == "Secured Messenger"
    assert shown["options"]["body"] == f"New message from {bob.email}"
    assert "4711" not in json.dumps(shown)
    assert "secret" not in json.dumps(shown)

    # Clicking it opens the conversation; once the tab shows, the messages are read.
    expect(status_of(bob, secret)).to_have_attribute("data-status", "delivered")
    alice.page.evaluate("window.__clickNotification(0)")
    set_tab_hidden(alice, False)
    expect(alice.page.locator("#conversation-title")).to_have_text(bob.email)
    expect(alice.page.locator("#messages li.message.incoming .text")).to_have_text(
        ["before opting in", "while you look at the list", secret]
    )
    expect(status_of(bob, secret)).to_have_attribute("data-status", "read")

    # The conversation is open and visible: nothing more pops up.
    bob.send("now you are reading along")
    expect(status_of(bob, "now you are reading along")).to_have_attribute("data-status", "read")
    assert len(notifications(alice)) == 1

    # The choice is remembered.
    alice.page.reload()
    alice.wait_ready()
    expect(toggle).to_be_checked()
    set_tab_hidden(alice, True)
    bob.send("after a reload")
    (shown,) = wait_for_notifications(alice, 1)
    assert shown["options"]["body"] == f"New message from {bob.email}"
    assert alice.page_errors == []


def test_a_group_message_to_a_hidden_tab_names_the_group_never_the_text(people, messenger_server):
    alice = people("alice")
    alice.context.add_init_script(script=TAB_VISIBILITY_AND_NOTIFICATIONS)
    alice.register()
    bob = people("bob").register()
    alice.befriend(bob)
    alice.context.grant_permissions(["notifications"], origin=messenger_server.url)
    alice.page.get_by_label(TOGGLE).check()
    bob.create_group("Night shift", [alice])
    expect(alice.group_button("Night shift")).to_be_visible()

    set_tab_hidden(alice, True)
    bob.send("the code is 0451")
    expect(alice.group_button("Night shift").locator(".badge")).to_have_text("1")
    (shown,) = wait_for_notifications(alice, 1)
    assert shown["options"]["body"] == "New message in Night shift"
    assert "0451" not in json.dumps(shown)

    alice.page.evaluate("window.__clickNotification(0)")
    set_tab_hidden(alice, False)
    expect(alice.page.locator("#conversation-title")).to_have_text("Night shift")
    expect(alice.page.locator("#messages li.message.incoming .text")).to_have_text(["the code is 0451"])
    expect(bob.outgoing("the code is 0451").locator(".status")).to_have_text("Read by 1 of 1")
    assert alice.page_errors == []
