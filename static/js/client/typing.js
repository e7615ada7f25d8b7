// Typing indicators both ways: ours is sent at most every TYPING_SEND_EVERY_MS while the user types
// and stopped after TYPING_IDLE_MS without input (or when the message goes); theirs shows for at
// most TYPING_SHOW_MS after their last `typing` frame. In a group (docs/PROTOCOL.md section 23) the
// frames name the group, and the group's row lists the members typing.
import { groupIdOf, groupKey, isGroupKey } from "./groupkey.js";

const TYPING_SEND_EVERY_MS = 3000;
const TYPING_IDLE_MS = 4000;
const TYPING_SHOW_MS = 6000;

export class Typing {
  constructor({ state, transport }) {
    this.state = state;
    this.transport = transport;
    this.sent = new Map(); // email -> {at, timer}
    this.shown = new Map(); // email -> timer
  }

  /** A `typing` frame from a contact, or from a member of a group (`group`). */
  onFrame(frame) {
    if (typeof frame.from !== "string") return;
    if (typeof frame.group === "string") this.showIn(groupKey(frame.group), frame.from, frame.state === "start");
    else this.show(frame.from, frame.state === "start");
  }

  /** Whether `email` is typing in group `key`: the group's `typing` list. */
  showIn(key, email, typing) {
    const group = this.state.groups.get(key);
    if (!group) return;
    const timer = `${key} ${email}`;
    clearTimeout(this.shown.get(timer));
    if (typing) this.shown.set(timer, setTimeout(() => this.showIn(key, email, false), TYPING_SHOW_MS));
    else this.shown.delete(timer);
    const others = group.typing.filter((who) => who !== email);
    const next = typing ? [...others, email] : others;
    if (next.length !== group.typing.length || typing !== group.typing.includes(email)) this.state.updateGroup(key, { typing: next });
  }

  /** Our `typing` frame for the conversation `key` (a contact's email or a group key). */
  frame(key, state) {
    return isGroupKey(key) ? { type: "typing", group: groupIdOf(key), state } : { type: "typing", to: key, state };
  }

  show(email, typing) {
    clearTimeout(this.shown.get(email));
    if (typing) this.shown.set(email, setTimeout(() => this.show(email, false), TYPING_SHOW_MS));
    this.state.updateContact(email, { typing });
  }

  /** The user typed in the conversation with `email`. */
  input(email) {
    if (!this.transport.isOpen) return;
    const now = Date.now();
    const entry = this.sent.get(email) || { at: 0, timer: null };
    if (now - entry.at > TYPING_SEND_EVERY_MS) {
      this.transport.send(this.frame(email, "start"));
      entry.at = now;
    }
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => this.stop(email), TYPING_IDLE_MS);
    this.sent.set(email, entry);
  }

  stop(email) {
    const entry = this.sent.get(email);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.sent.delete(email);
    this.transport.send(this.frame(email, "stop"));
  }
}
