// Key upkeep and contacts' identity keys: this device's one-time prekeys refilled and its signed
// prekey rotated (../session.js refillOneTimePrekeys, maintainSignedPrekey); each contact's identity
// key checked against the server (a change is held until the user accepts it, ../session.js), the
// user's answers (verified, accepted) and the safety number. Writes identities to state.
import { ApiError, keysApi } from "../api.js";
import {
  acceptIdentityChange,
  maintainSignedPrekey,
  noteIdentityKey,
  refillOneTimePrekeys,
  safetyNumberFor,
  setVerified,
} from "../session.js";

export class Keys {
  constructor({ state, store, report }) {
    this.state = state;
    this.store = store;
    this.report = report;
  }

  async upkeep() {
    try {
      await refillOneTimePrekeys(this.store, {
        status: () => keysApi.prekeyCount(),
        upload: (keys) => keysApi.uploadPrekeys(keys),
      });
      const status = await keysApi.prekeyCount();
      await maintainSignedPrekey(this.store, status, (spk) => keysApi.setSignedPrekey(spk));
    } catch (error) {
      this.report(error, "Could not update your encryption keys: ");
    }
  }

  /**
   * `prekeys_low`: the server ran low on one device's one-time prekeys. Only that device can
   * upload its own (the private halves are in its browser), so another device's event is not ours;
   * one without `device_id` (a server from before devices) is.
   */
  onPrekeysLow(frame) {
    const deviceId = frame ? frame.device_id : undefined;
    if (deviceId === undefined || deviceId === null || deviceId === this.state.deviceId) this.upkeep();
  }

  /** Shows a stored identity record (../storage.js `identities`) in state. */
  applyIdentity(record) {
    if (!record) return;
    this.state.updateContact(record.email, {
      identity: { identityKey: record.identityKey, verified: record.verified, changedTo: record.changedTo || null },
    });
  }

  async refreshIdentity(email) {
    this.applyIdentity(await this.store.get("identities", email));
  }

  /** Records `email`'s identity key (given by an `identity_changed` frame, else asked of the server). */
  async checkIdentity(email, identityKey = null) {
    try {
      const key = identityKey || (await keysApi.identity(email)).identity_key;
      await noteIdentityKey(this.store, email, key);
      await this.refreshIdentity(email);
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 404) this.report(error);
    }
  }

  async safetyNumber(email) {
    const own = this.state.ownIdentityKey;
    let record = await this.store.get("identities", email);
    if (!record) {
      await this.checkIdentity(email);
      record = await this.store.get("identities", email);
    }
    if (!record || !own) return null;
    const theirs = record.changedTo || record.identityKey;
    return {
      number: safetyNumberFor(own, theirs),
      verified: Boolean(record.verified) && !record.changedTo,
      changed: Boolean(record.changedTo),
    };
  }

  async markVerified(email, verified) {
    await setVerified(this.store, email, verified);
    await this.refreshIdentity(email);
  }

  /** The user accepts `email`'s new identity key (the held messages are outbox.js's). */
  async accept(email) {
    await acceptIdentityChange(this.store, email);
    await this.refreshIdentity(email);
  }
}
