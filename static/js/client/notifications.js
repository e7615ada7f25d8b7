// Notifications: the user's setting (kept in storage meta `settings`, asked of the browser's
// permission) and a system notification for a message arriving while the tab is hidden (from a
// contact, or in a group).
export class Notifications {
  /** `open(email)` opens that conversation (a click on the notification). */
  constructor({ state, store, open }) {
    this.state = state;
    this.store = store;
    this.open = open;
  }

  async setEnabled(enabled) {
    let on = enabled;
    if (on && "Notification" in window && Notification.permission !== "granted") {
      on = (await Notification.requestPermission()) === "granted";
      if (!on) this.state.setNotice("Notifications are blocked for this site in your browser settings.", "info");
    }
    const settings = { ...this.state.settings, notifications: on };
    await this.store.setMeta("settings", settings);
    this.state.setSettings(settings);
  }

  notify(email) {
    this.show(`New message from ${email}`, email);
  }

  /** A group message: names the group (its name, once a member sent it), never the text. */
  notifyGroup(key, name) {
    this.show(name ? `New message in ${name}` : "New message in a group", key);
  }

  show(body, key) {
    if (!document.hidden || !this.state.settings.notifications) return;
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    // Never the message text: a notification shows on the lock screen and in system logs.
    const notification = new Notification("Secured Messenger", { body, tag: key });
    notification.onclick = () => {
      window.focus();
      this.open(key);
      notification.close();
    };
  }
}
