// Typing indicators both ways: ours is sent at most every TYPING_SEND_EVERY_MS while the user types
// and stopped after TYPING_IDLE_MS without input (or when the message goes); theirs shows for at
// most TYPING_SHOW_MS after their last `typing` frame.
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

  /** A `typing` frame from a contact. */
  onFrame(frame) {
    if (typeof frame.from !== "string") return;
    this.show(frame.from, frame.state === "start");
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
      this.transport.send({ type: "typing", to: email, state: "start" });
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
    this.transport.send({ type: "typing", to: email, state: "stop" });
  }
}
