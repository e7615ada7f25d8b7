// Notifications: the user's setting (kept in storage meta `settings`, asked of the browser's
// permission) and a system notification for a message arriving while the tab is hidden.
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
    if (!document.hidden || !this.state.settings.notifications) return;
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    // Never the message text: a notification shows on the lock screen and in system logs.
    const notification = new Notification("Secured Messenger", { body: `New message from ${email}`, tag: email });
    notification.onclick = () => {
      window.focus();
      this.open(email);
      notification.close();
    };
  }
}
