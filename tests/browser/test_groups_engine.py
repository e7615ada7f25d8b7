"""The browser's group engine (static/js/client/groups.js) in real Chromium, below the UI: a
group made over REST reaches both people's clients (list, notice lines in IndexedDB), and a
group message sent by a second client built in Alice's page (the UI for groups is not served
yet) is decrypted by Bob's app, counted delivered, and answered, with no error in either page."""

import pytest

pytestmark = pytest.mark.browser

# A second MessengerClient of the same account in the page (its own socket), built from the
# app's own modules, so that the facade's group actions can be called without the UI.
HEADLESS_CLIENT = """async () => {
  const base = document.querySelector("script[type=module]").src;
  const load = (name) => import(new URL(name, base).href);
  const [{ MessengerClient }, { AppState }, { openAccountStore }, { auth }] = await Promise.all(
    ["client.js", "state.js", "storage.js", "api.js"].map(load),
  );
  const me = await auth.me();
  const state = new AppState();
  state.setMe(me);
  const store = await openAccountStore(me);
  const client = new MessengerClient({ state, store, onSessionEnded() {}, onDeviceRemoved() {} });
  await client.start();
  await new Promise((resolve) => {
    const opened = () => state.connection === "online";
    if (opened()) resolve();
    state.addEventListener("change", () => opened() && resolve());
  });
  window.groupsEngineClient = client;
  window.groupsEngineState = state;
}"""


def records(person, store: str) -> list[dict]:
    return person.local_records(store)


def notices(person) -> list[str]:
    return sorted(m["text"] for m in records(person, "messages") if m.get("notice"))


def no_errors(person) -> None:
    assert not person.page_errors
    assert not [m for m in person.console_messages if m.startswith("error")]


def test_a_group_reaches_both_clients_and_a_group_message_is_read(people):
    alice = people("alice").register()
    bob = people("bob").register()
    alice.befriend(bob)

    answer = alice.api("POST", "/api/v1/groups/", {"members": [bob.email]})
    assert answer["status"] == 201, answer
    group_id = answer["body"]["id"]
    created = f"{alice.email} created the group with {bob.email}"
    # group_changed: both clients read the list and the change, stored as a notice line.
    for person in (alice, bob):
        person.wait_until(lambda p=person: any(g["id"] == group_id for g in records(p, "groups")), "the group stored")
        person.wait_until(lambda p=person: created in notices(p), "the notice line stored")

    alice.page.evaluate(HEADLESS_CLIENT)
    alice.page.evaluate(
        """async (id) => {
          const client = window.groupsEngineClient;
          await client.renameGroup(`group:${id}`, "Climbing");
          await client.sendText(`group:${id}`, "Hello group");
        }""",
        group_id,
    )

    def bob_read() -> bool:
        return any(m.get("text") == "Hello group" and m["direction"] == "in" for m in records(bob, "messages"))

    bob.wait_until(bob_read, "Bob's app decrypted the group message")
    received = next(m for m in records(bob, "messages") if m.get("text") == "Hello group")
    assert received["contact"] == f"group:{group_id}"
    assert received["sender"] == alice.email
    assert not received.get("failed")
    bob.wait_until(
        lambda: any(g["id"] == group_id and g.get("name") == "Climbing" for g in records(bob, "groups")),
        "the name from the settings message",
    )
    assert f'{alice.email} named the group "Climbing"' in notices(bob)
    # Alice's message left the outbox as sent, and counts arrive from group_receipts.
    alice.wait_until(
        lambda: any(
            m.get("text") == "Hello group" and m.get("status") in ("sent", "delivered", "read")
            for m in records(alice, "messages")
        ),
        "Alice's message sent",
    )
    assert not [e for e in records(alice, "outbox") if e.get("group") == group_id]
    # Bob's copy was acknowledged: Alice's message counts it delivered (group_receipts).
    alice.wait_until(
        lambda: any(
            m.get("text") == "Hello group" and (m.get("counts") or {}).get("delivered") == 1
            for m in records(alice, "messages")
        ),
        "Alice's message counted delivered",
    )

    # Bob answers through the pairwise session Alice's key envelope founded; Alice's app reads it.
    bob.page.evaluate(HEADLESS_CLIENT)
    bob.page.evaluate("(id) => window.groupsEngineClient.sendText(`group:${id}`, 'Hello Alice')", group_id)
    alice.wait_until(
        lambda: any(
            m.get("text") == "Hello Alice" and m["direction"] == "in" and m.get("sender") == bob.email
            for m in records(alice, "messages")
        ),
        "Alice's app decrypted Bob's answer",
    )
    no_errors(alice)
    no_errors(bob)
