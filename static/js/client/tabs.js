// Tabs: the BroadcastChannel `sm:<account>` shared by this account's tabs. A tab that changed
// storage says what (`conversation`, `identity` with an email; `contacts`) and the others re-read it
// (client.js decides how). The same channel carries the `erasing` message of ../main.js, which
// handles it there: erasing must work before a client exists (on the set-up screen).
export class Tabs {
  constructor({ account }) {
    this.account = account;
    this.channel = null;
  }

  /** Calls `onMessage(data)` for every message another tab posts. */
  listen(onMessage) {
    if (!("BroadcastChannel" in window)) return;
    this.channel = new BroadcastChannel(`sm:${this.account}`);
    this.channel.onmessage = (event) => onMessage(event.data || {});
  }

  broadcast(message) {
    if (this.channel) this.channel.postMessage(message);
  }

  close() {
    if (this.channel) this.channel.close();
  }
}
