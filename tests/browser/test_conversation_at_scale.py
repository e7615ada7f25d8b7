"""A long conversation in real Chromium: the page holds a window of it, older messages come from
IndexedDB in pages as the person scrolls up (the view stays on what they read), "Jump to latest"
brings the latest back; status changes and new messages touch only their own element."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

HISTORY = 1000
WINDOW_MAX = 300  # static/js/state.js
MINUTE_MS = 60_000

# Writes `count` incoming messages from `email` into this browser's history for the signed-in
# account, ten minutes apart and ending an hour ago (so they span several days), through the app's
# own storage module: the history a person would have after a week of a busy conversation.
SEED = """async ({email, count, minute}) => {
  const storage = await import("/static/js/storage.js");
  const me = await (await fetch("/api/v1/auth/me")).json();
  const store = await storage.openAccountStore(me);
  const end = Date.now() - 60 * minute;
  const writes = [];
  for (let i = 0; i < count; i += 1) {
    writes.push({put: "messages", value: {
      id: `seed:${String(i).padStart(5, "0")}`, contact: email, direction: "in",
      text: `old message ${i}`, ts: end - (count - 1 - i) * 10 * minute, status: "received",
    }});
  }
  await store.write(writes);
}"""

# The list as the page shows it: message ids and texts in order, and whether every day separator
# sits right before the first message of its day.
LIST = """() => {
  const list = document.getElementById("messages");
  const children = [...list.children];
  const messages = children.filter((li) => li.classList.contains("message"));
  let separatorsRight = true;
  let day = null;
  for (const li of children) {
    if (li.classList.contains("day")) {
      const next = li.nextElementSibling;
      if (!next || !next.classList.contains("message")) separatorsRight = false;
      day = "separator";
      continue;
    }
    const shownDay = new Date(li.querySelector("time").dateTime).toDateString();
    if (day !== "separator" && day !== shownDay) separatorsRight = false;
    day = shownDay;
  }
  return {
    texts: messages.map((li) => li.querySelector(".text").textContent),
    separators: children.length - messages.length,
    separatorsRight,
  };
}"""


def shown(page) -> dict:
    return page.evaluate(LIST)


def scroll_to_top_and_watch(page) -> dict:
    """Scrolls the list to its top and notes the first message and where it is on the screen."""
    return page.evaluate(
        """() => {
          const list = document.getElementById("messages");
          list.scrollTop = 0;
          const first = list.querySelector("li.message");
          window.__anchor = first;
          return {text: first.querySelector(".text").textContent, top: first.getBoundingClientRect().top};
        }"""
    )


def anchor_top(page) -> float:
    return page.evaluate("() => window.__anchor.isConnected ? window.__anchor.getBoundingClientRect().top : null")


def test_a_long_conversation_is_shown_in_a_window_and_older_messages_load_on_the_way_up(people):
    alice = people("alice").register()
    bob = people("bob").register()
    alice.befriend(bob)
    alice.page.evaluate(SEED, {"email": bob.email, "count": HISTORY, "minute": MINUTE_MS})
    alice.page.reload()
    alice.wait_ready()
    alice.open_chat(bob)

    # The latest messages, not the whole conversation.
    last = alice.page.locator("#messages li.message").last
    expect(last.locator(".text")).to_have_text(f"old message {HISTORY - 1}")
    first = shown(alice.page)
    assert 0 < len(first["texts"]) <= WINDOW_MAX
    assert first["separatorsRight"]
    assert first["texts"] == [f"old message {i}" for i in range(HISTORY - len(first["texts"]), HISTORY)]

    # Up: each page of older messages joins above, and what was at the top stays where it was.
    seen_jump = False
    for _ in range(HISTORY):
        before = scroll_to_top_and_watch(alice.page)
        if before["text"] == "old message 0":
            break
        expect(alice.page.locator("#messages li.message").first.locator(".text")).not_to_have_text(before["text"])
        assert anchor_top(alice.page) == pytest.approx(before["top"], abs=1)
        now = shown(alice.page)
        assert len(now["texts"]) <= WINDOW_MAX
        assert now["separatorsRight"]
        numbers = [int(text.rsplit(" ", 1)[1]) for text in now["texts"]]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "a window is a run of messages"
        seen_jump = seen_jump or alice.page.locator("#jump-latest").is_visible()
    else:
        pytest.fail("the first message never came")
    assert seen_jump, "far from the latest, 'Jump to latest' shows"

    # Back to the latest in one click; the window holds the latest messages again.
    alice.page.locator("#jump-latest").click()
    expect(last.locator(".text")).to_have_text(f"old message {HISTORY - 1}")
    expect(alice.page.locator("#jump-latest")).to_be_hidden()
    assert len(shown(alice.page)["texts"]) <= WINDOW_MAX

    # The conversation goes on at the bottom.
    bob.open_chat(alice)
    bob.send("a new one after a thousand")
    expect(last.locator(".text")).to_have_text("a new one after a thousand")
    newest = alice.page.locator("#messages li.message.incoming").filter(has_text="a new one after a thousand")
    expect(newest).to_be_in_viewport()
    assert not alice.page_errors


# Every element of the list gets a mark; a MutationObserver counts children added to and removed
# from the list from now on.
WATCH = """() => {
  const list = document.getElementById("messages");
  for (const li of list.children) li.__before = true;
  window.__changes = {added: [], removed: 0};
  new MutationObserver((records) => {
    for (const record of records) {
      for (const node of record.addedNodes) window.__changes.added.push(node.className);
      window.__changes.removed += record.removedNodes.length;
    }
  }).observe(list, {childList: true});
}"""

CHANGES = """(text) => {
  const list = document.getElementById("messages");
  const mine = [...list.querySelectorAll("li.message")].find((li) => li.textContent.includes(text));
  return {
    ...window.__changes,
    unmarked: [...list.children].filter((li) => !li.__before && li !== mine).length,
    sameElement: Boolean(mine && mine.__probe),
  };
}"""


def test_new_messages_and_status_changes_touch_only_their_own_element(people):
    alice = people("alice").register()
    bob = people("bob").register()
    alice.befriend(bob)
    alice.page.evaluate(SEED, {"email": bob.email, "count": 50, "minute": MINUTE_MS})
    alice.page.reload()
    alice.wait_ready()
    alice.open_chat(bob)
    expect(alice.messages()).to_have_count(50)
    alice.page.evaluate(WATCH)

    alice.send("one element from sending to read")
    mine = alice.outgoing("one element from sending to read")
    expect(mine).to_have_count(1)
    mine.evaluate("(li) => { li.__probe = true; }")
    # Bob is not in the conversation: delivered; then he opens it: read. The same element all along.
    expect(mine).to_have_attribute("data-status", "delivered")
    bob.open_chat(alice)
    expect(mine).to_have_attribute("data-status", "read")
    expect(mine.locator(".status")).to_have_text("Read")

    # A message from Bob, and Alice's unread badge elsewhere, change nothing else in her list.
    bob.send("and one from Bob")
    expect(alice.page.locator("#messages li.message.incoming").filter(has_text="and one from Bob")).to_have_count(1)
    changes = alice.page.evaluate(CHANGES, "one element from sending to read")
    assert changes["sameElement"], "the status changes updated the element in place"
    assert changes["removed"] == 0, "no element of the list was replaced"
    assert changes["added"] == ["message outgoing", "message incoming"]
    assert changes["unmarked"] == 1  # Bob's new message; every other element is the one that was there
    assert not alice.page_errors


def test_upgrading_from_version_2_keeps_the_history_and_pages_it_through_the_new_index(people):
    page = people("ann").page
    page.goto("/login")
    result = page.evaluate(
        """async () => {
          const account = "7:ann@example.test";
          const v2 = await new Promise((resolve, reject) => {
            const request = indexedDB.open("SecureMessengerDB", 2);
            request.onupgradeneeded = () => {
              const messages = request.result.createObjectStore("messages", { keyPath: ["account", "id"] });
              messages.createIndex("conversation", ["account", "contact", "ts"]);
              messages.createIndex("serverId", ["account", "serverId"]);
              messages.createIndex("unread", ["account", "contact", "unread"]);
              messages.createIndex("awaiting", ["account", "awaiting"]);
              for (let i = 0; i < 5; i += 1) {
                const bob = "bob@example.test";
                messages.add({ account, id: `in:${i}`, contact: bob, direction: "in", text: `m${i}`, ts: 1000 + i });
              }
              const carol = "carol@example.test";
              messages.add({ account, id: "in:9", contact: carol, direction: "in", text: "other", ts: 1002 });
            };
            request.onsuccess = () => resolve(request.result);
            request.onerror = () => reject(request.error);
          });
          v2.close();
          const storage = await import("/static/js/storage.js");
          const db = await storage.openDatabase();
          const store = new storage.AccountStore(db, account);
          const page = (options) => store.page("messages", "history", ["bob@example.test"], options);
          const latest = await page({ limit: 2 });
          const before = await page({ before: [1003, "in:3"], limit: 2 });
          const after = await page({ after: [1000, "in:0"], limit: 10 });
          const version = db.version;
          db.close();
          const texts = (records) => records.map((m) => m.text);
          return { version, latest: texts(latest), before: texts(before), after: texts(after) };
        }"""
    )
    assert result["version"] >= 3
    assert result["latest"] == ["m3", "m4"]
    assert result["before"] == ["m1", "m2"]
    assert result["after"] == ["m1", "m2", "m3", "m4"]
