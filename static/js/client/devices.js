// The account's devices (docs/PROTOCOL.md sections 14, 15 and 19): the list the Devices panel
// shows (re-read on every connect and on `devices_changed` for the account itself), renaming and
// unlinking. Writes state only. Unlinking this browser itself is handed to `onUnlinked` (main.js
// erases this device's keys and shows the sign-in page), as when the server says so.
import { ApiError, devicesApi } from "../api.js";

export const DEVICE_NAME_MAX = 64; // accounts/models.py DEVICE_NAME_MAX_LENGTH

/**
 * A name as the server will take it: trimmed, 1 to DEVICE_NAME_MAX characters (counted as the
 * server counts them, by code point). Throws an Error with a sentence for the user otherwise; the
 * server's own rules (no control or invisible characters) come back as its answer.
 */
export function deviceNameInput(value) {
  const name = String(value ?? "").trim();
  if (!name) throw new Error("Enter a name for the device.");
  if ([...name].length > DEVICE_NAME_MAX) throw new Error(`A device name has at most ${DEVICE_NAME_MAX} characters.`);
  return name;
}

export class Devices {
  constructor({ state, report, onUnlinked }) {
    this.state = state;
    this.report = report;
    this.onUnlinked = onUnlinked;
  }

  async load() {
    try {
      const answer = await devicesApi.list();
      this.state.setDevices(answer.devices || [], answer.max ?? null);
    } catch (error) {
      // A 401 ends the session (api.js): the page is leaving, nothing to tell.
      if (!(error instanceof ApiError && error.status === 401)) this.report(error, "Could not read your devices: ");
    }
  }

  /** Renames device `id`; errors (ours or the server's) are thrown for the panel to show. */
  async rename(id, value) {
    const name = deviceNameInput(value);
    const answer = await devicesApi.rename(id, name);
    if (this.state.devices) {
      const list = this.state.devices.list.map((device) => (device.id === id ? { ...device, name: answer.name } : device));
      this.state.setDevices(list, this.state.devices.max);
    }
    if (id === this.state.deviceId) this.state.setMe({ ...this.state.me, device: { id, name: answer.name } });
  }

  /** Unlinks device `id`: this browser's own number means this browser leaves the account. */
  async unlink(id) {
    await devicesApi.unlink(id);
    if (id === this.state.deviceId) {
      this.onUnlinked();
      return;
    }
    await this.load();
  }

  /**
   * `devices_changed`: the account's own list is read again. A contact's is quiet: no
   * safety-number warning (the identity key did not change, docs/PROTOCOL.md section 19), and
   * nothing else yet (sessions per device come with the fan-out of section 17).
   */
  onChanged(frame) {
    const own = this.state.me && String(this.state.me.email).toLowerCase();
    if (frame && typeof frame.email === "string" && frame.email.toLowerCase() === own) this.load();
  }
}
