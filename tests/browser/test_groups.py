"""Groups in real Chromium, through the UI (docs/PROTOCOL.md part III): three people form a group
and talk, with the statuses of 1:1 counted in members; a member who is removed, or leaves, stops
receiving, and what the group says after the removal cannot be read with the keys the removed
member's browser holds; a member added later does not read the history from before.

The proofs about keys do not trust the UI: the ciphertext comes from the socket frames another
member's browser received, and the removed (or late) member's own browser tries every sender key
record it stored on it."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import link_device

pytestmark = pytest.mark.browser


def incoming(person, text: str, page=None):
    return (page or person.page).locator("#messages li.message.incoming").filter(has_text=text)


def frame_of(person, text_sender: str) -> dict:
    """The last group_message frame `person` received from `text_sender`."""
    frames = [frame for frame in person.group_frames() if frame["from"] == text_sender]
    assert frames, f"no group_message from {text_sender}"
    return frames[-1]


def try_stored_sender_keys(person, frame: dict) -> dict:
    """In `person`'s browser: every sender key record it stored (any store, any group, any sender)
    tried on the body of `frame`, with the sender's identity key as that browser knows it.
    Returns {"records": how many, "outcomes": ["decrypted" | an error code, ...]}."""
    return person.page.evaluate(
        """async (frame) => {
          const { decryptGroupMessage } = await import("/static/js/crypto/senderkey.js");
          const db = await new Promise((resolve, reject) => {
            const request = indexedDB.open("SecureMessengerDB");
            request.onsuccess = () => resolve(request.result);
            request.onerror = () => reject(request.error);
          });
          const everything = [];
          for (const store of db.objectStoreNames) {
            everything.push(...await new Promise((resolve, reject) => {
              const request = db.transaction(store, "readonly").objectStore(store).getAll();
              request.onsuccess = () => resolve(request.result.map((value) => ({ store, value })));
              request.onerror = () => reject(request.error);
            }));
          }
          db.close();
          // A receiver's record of sender keys (section 22): {version: 1, current, previous}.
          const records = [];
          const walk = (value) => {
            if (!value || typeof value !== "object") return;
            if (value.version === 1 && "current" in value && "previous" in value) records.push(value);
            else for (const item of Object.values(value)) walk(item);
          };
          for (const { value } of everything) walk(value);
          const identity = everything.find((r) => r.store === "identities" && r.value.email === frame.from);
          const outcomes = [];
          for (const record of records) {
            try {
              await decryptGroupMessage(record, {
                groupId: frame.group, senderIdentityKey: identity.value.identityKey,
                senderDevice: frame.from_device, body: frame.body,
              });
              outcomes.push("decrypted");
            } catch (error) {
              outcomes.push(error.code || String(error));
            }
          }
          return { records: records.length, outcomes };
        }""",
        frame,
    )


def test_three_people_talk_in_a_group_and_a_removed_member_reads_nothing_after(people):
    alice = people("alice").register()
    bob = people("bob").register()
    carol = people("carol").register()
    alice.befriend(bob)
    alice.befriend(carol)  # Bob and Carol are not each other's contacts: the group is enough

    alice.create_group("Climbing 🧗", [bob, carol])
    expect(alice.group_button("Climbing 🧗")).to_be_visible()
    # The name travels end-to-end encrypted: the others learn it from Alice's first message.
    expect(bob.group_button("Climbing 🧗")).to_be_visible()
    expect(carol.group_button("Climbing 🧗")).to_be_visible()

    alice.send("hello both")
    expect(bob.group_button("Climbing 🧗").locator(".badge")).to_have_text("1")
    bob.open_group("Climbing 🧗")
    message = incoming(bob, "hello both")
    expect(message).to_have_count(1)
    expect(message.locator(".sender")).to_have_text(alice.email)
    status = alice.outgoing("hello both").locator(".status")
    expect(status).to_have_text(re.compile(r"^(Delivered to 2|Read by 1) of 2$"))
    carol.open_group("Climbing 🧗")
    expect(incoming(carol, "hello both")).to_have_count(1)
    expect(status).to_have_text("Read by 2 of 2")
    assert any(line.startswith(f"{alice.email} created the group with") for line in bob.notices())

    bob.send("hi from bob")
    expect(incoming(carol, "hi from bob").locator(".sender")).to_have_text(bob.email)
    expect(incoming(alice, "hi from bob")).to_have_count(1)
    carol.send("hi from carol")
    expect(incoming(alice, "hi from carol")).to_have_count(1)
    expect(incoming(bob, "hi from carol")).to_have_count(1)

    # Alice (admin) removes Carol.
    dialog = alice.members_dialog()
    dialog.get_by_role("button", name=f"Remove {carol.email}").click()
    expect(dialog.locator(f"li.member[data-email='{carol.email}']")).to_have_count(0)
    dialog.get_by_role("button", name="Close").click()
    expect(carol.page.locator("#composer-input")).to_be_disabled()
    expect(carol.page.locator("#composer-note")).to_contain_text("no longer a member")
    expect(carol.page.locator("#messages li.message.notice").filter(has_text=f"removed {carol.email}")).to_have_count(1)

    alice.send("after carol left")
    expect(incoming(bob, "after carol left")).to_have_count(1)
    bob.send("bob after carol left")
    expect(incoming(alice, "bob after carol left")).to_have_count(1)
    expect(incoming(carol, "after carol left")).to_have_count(0)
    assert not [frame for frame in carol.group_frames() if frame["body"] == frame_of(bob, alice.email)["body"]]

    # Alice makes Bob admin: his Members dialog offers what admins may do.
    dialog = alice.members_dialog()
    dialog.get_by_role("button", name=f"Make {bob.email} admin").click()
    expect(dialog.locator(f"li.member[data-email='{bob.email}'] .device-tag")).to_have_text("admin")
    dialog.get_by_role("button", name="Close").click()
    expect(bob.page.locator("#messages li.message.notice").filter(has_text=f"made {bob.email} admin")).to_have_count(1)
    dialog = bob.members_dialog()
    expect(dialog.get_by_role("button", name=f"Remove {alice.email}")).to_be_visible()
    dialog.get_by_role("button", name="Close").click()

    # Carol's browser keeps every sender key it received, Alice's earlier one included; none of
    # them opens what Alice and Bob sent after the removal: both made new sender keys.
    for sender, receiver in ((alice, bob), (bob, alice)):
        tried = try_stored_sender_keys(carol, frame_of(receiver, sender.email))
        assert tried["records"] >= 2, tried
        assert set(tried["outcomes"]) == {"unknown_sender_key"}, tried
    for person in (alice, bob, carol):
        assert person.page_errors == []


def test_a_member_leaves_and_a_late_member_reads_nothing_from_before(people):
    alice = people("alice").register()
    bob = people("bob").register()
    dave = people("dave").register()
    alice.befriend(bob)
    alice.befriend(dave)

    alice.create_group("Family", [bob])
    alice.send("before dave")
    bob.open_group("Family")
    expect(incoming(bob, "before dave")).to_have_count(1)
    before = frame_of(bob, alice.email)

    # Bob leaves: Alice sees the line, Bob can read the history but no longer send.
    dialog = bob.members_dialog()
    dialog.get_by_role("button", name="Leave the group").click()
    dialog.get_by_role("button", name="Confirm: leave the group").click()
    expect(dialog).to_be_hidden()
    expect(bob.page.locator("#composer-input")).to_be_disabled()
    expect(alice.page.locator("#messages li.message.notice").filter(has_text=f"{bob.email} left")).to_have_count(1)

    # Alice adds Dave, who then sees the group's name and what follows, nothing from before.
    dialog = alice.members_dialog()
    dialog.get_by_label("Contact to add").select_option(dave.email)
    dialog.get_by_role("button", name="Add to the group").click()
    expect(dialog.locator(f"li.member[data-email='{dave.email}']")).to_have_count(1)
    dialog.get_by_role("button", name="Close").click()
    alice.send("welcome dave")
    dave.open_group("Family")
    expect(incoming(dave, "welcome dave")).to_have_count(1)
    expect(incoming(dave, "before dave")).to_have_count(0)
    expect(incoming(bob, "welcome dave")).to_have_count(0)
    dave.send("thanks")
    expect(incoming(alice, "thanks").locator(".sender")).to_have_text(dave.email)

    # Dave's stored keys do not open the message from before he joined.
    tried = try_stored_sender_keys(dave, before)
    assert tried["records"] >= 1, tried
    assert "decrypted" not in tried["outcomes"], tried
    for person in (alice, bob, dave):
        assert person.page_errors == []


def test_group_history_unread_and_typing_survive_a_reload(people):
    alice = people("alice").register()
    bob = people("bob").register()
    alice.befriend(bob)
    alice.create_group("Book club", [bob])
    expect(bob.group_button("Book club")).to_be_visible()
    bob.open_group("Book club")
    alice.page.get_by_label("Message", exact=True).press_sequentially("typ")
    expect(bob.page.locator("#conversation-typing")).to_have_text(f"{alice.email} is typing…")
    alice.send("first")
    expect(incoming(bob, "first")).to_have_count(1)

    # Offline, Bob misses three messages; back, they arrive in order and are counted unread.
    bob.go_offline()
    for text in ("one", "two", "three"):
        alice.send(text)
        expect(alice.outgoing(text).locator(".status")).to_have_text("Sent")
    bob.come_back()
    expect(bob.group_button("Book club").locator(".badge")).to_have_text("3")
    bob.open_group("Book club")
    expect(bob.page.locator("#messages li.message.incoming .text")).to_have_text(["first", "one", "two", "three"])
    expect(alice.outgoing("three").locator(".status")).to_have_text("Read by 1 of 1")
    alice.page.reload()
    alice.wait_ready()
    alice.open_group("Book club")
    expect(alice.page.locator("#messages li.message.outgoing .text")).to_have_text(["first", "one", "two", "three"])
    assert alice.page_errors == []
    assert bob.page_errors == []


def test_a_members_new_safety_number_holds_the_group_until_accepted(people):
    alice = people("alice").register()
    bob = people("bob").register()
    carol = people("carol").register()
    alice.befriend(bob)
    alice.befriend(carol)
    alice.create_group("Project", [bob, carol])
    alice.send("before the change")
    carol.open_group("Project")
    expect(incoming(carol, "before the change")).to_have_count(1)

    # Carol starts over on a new browser: new identity key, so a new safety number.
    carol2 = people("carol-new-browser", email=carol.email)
    carol2.login()
    carol2.start_over()
    carol2.wait_ready()

    warning = alice.page.locator("#identity-warning")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text(carol.email)
    expect(alice.group_button("Project")).to_contain_text("Safety number changed")
    alice.send("held in the group")
    held = alice.outgoing("held in the group").locator("[data-status]")
    expect(held).to_have_attribute("data-status", "held")
    bob.open_group("Project")
    expect(incoming(bob, "before the change")).to_have_count(1)
    bob.page.wait_for_timeout(500)
    expect(incoming(bob, "held in the group")).to_have_count(0)

    alice.page.get_by_role("button", name="I understand, send to the new key").click()
    expect(warning).to_be_hidden()
    expect(incoming(bob, "held in the group")).to_have_count(1)
    carol2.open_group("Project")
    expect(incoming(carol2, "held in the group")).to_have_count(1)
    expect(incoming(carol2, "before the change")).to_have_count(0)
    assert alice.page_errors == []


def test_a_linked_browser_gets_the_group_its_name_and_what_its_account_sent(people):
    alice = people("alice").register()
    bob = people("bob").register()
    alice.befriend(bob)
    alice.create_group("Two devices", [bob])
    alice.send("before the laptop")
    bob.open_group("Two devices")
    expect(incoming(bob, "before the laptop")).to_have_count(1)

    laptop = people("bob-laptop", email=bob.email)
    link_device(bob, laptop)
    # The laptop learns the group from the server and its name with the next message.
    alice.send("with the laptop")
    laptop.open_group("Two devices")
    expect(incoming(laptop, "with the laptop").locator(".sender")).to_have_text(alice.email)
    expect(incoming(laptop, "before the laptop")).to_have_count(0)
    # Bob's message from his first browser shows as sent on the laptop.
    bob.send("from bob's first browser")
    expect(laptop.outgoing("from bob's first browser")).to_have_count(1)
    expect(incoming(alice, "from bob's first browser")).to_have_count(1)
    laptop.send("from the laptop")
    expect(incoming(alice, "from the laptop").locator(".sender")).to_have_text(bob.email)
    expect(bob.outgoing("from the laptop")).to_have_count(1)
    # Bob counts once in "read by": reading on either device is the member's read.
    expect(laptop.outgoing("from the laptop").locator(".status")).to_have_text("Read by 1 of 1")
    assert notices_named(bob) == 1
    for person in (alice, bob, laptop):
        assert person.page_errors == []


def notices_named(person) -> int:
    """How many "named the group" lines the open group's history shows."""
    return len([line for line in person.notices() if "named the group" in line])
