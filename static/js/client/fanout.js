// Which devices a message goes to (docs/PROTOCOL.md sections 16, 17.1 and 19): the device lists of
// accounts (keys/devices), kept until `devices_changed` or a `device_mismatch` says they changed,
// and what a `device_mismatch` answer asks of a stored frame. No DOM; the list is fetched through
// the function given, so Node tests run it.

export const MISMATCHES_MAX = 3; // in a row, then the message fails (section 17.1)

function deviceIds(value, what) {
  if (!Array.isArray(value) || !value.every((id) => Number.isInteger(id) && id > 0)) {
    throw new Error(`The server's ${what} is malformed.`);
  }
  return [...new Set(value)].sort((a, b) => a - b);
}

/** A keys/devices answer, checked: {identityKey, deviceIds} (ascending, distinct). */
export function deviceListOf(answer) {
  if (!answer || typeof answer.identity_key !== "string") throw new Error("The server's device list is malformed.");
  return { identityKey: answer.identity_key, deviceIds: deviceIds(answer.device_ids, "device list") };
}

/**
 * The devices of one message: the recipient's (`to`) and our own others (`own`: the list of our
 * own account without `selfDevice`), with the identity keys the lists named.
 */
export function targetsOf(theirs, ours, selfDevice) {
  if (!Number.isInteger(selfDevice) || selfDevice < 1) throw new Error("This browser is not a device of the account.");
  return {
    to: theirs.deviceIds,
    own: ours.deviceIds.filter((id) => id !== selfDevice),
    identityKey: theirs.identityKey,
    ownIdentityKey: ours.identityKey,
  };
}

/**
 * What a `device_mismatch` answer (section 17.1) asks of the frame `entry` holds ({copies, own}):
 * the devices to send to now (the frame's, without `extra`, with `missing`) and the sessions to
 * drop (`extra`: removed devices). The answer is the server's view at that moment, so no list is
 * fetched again for it.
 * @returns {{targets: {to: number[], own: number[]}, drop: {to: number[], own: number[]}}}
 */
export function afterMismatch(entry, answer) {
  const side = (value, name) => {
    if (!value || typeof value !== "object") throw new Error("The server's device_mismatch answer is malformed.");
    return deviceIds(value[name], "device_mismatch answer");
  };
  const missing = { to: side(answer.missing, "to"), own: side(answer.missing, "own") };
  const extra = { to: side(answer.extra, "to"), own: side(answer.extra, "own") };
  const now = (copies, name) => {
    const sent = (copies || []).map((copy) => copy.device).filter((id) => !extra[name].includes(id));
    return [...new Set([...sent, ...missing[name]])].sort((a, b) => a - b);
  };
  return { targets: { to: now(entry.copies, "to"), own: now(entry.own, "own") }, drop: extra };
}

/** The device lists of accounts, fetched once and kept until forgotten. */
export class DeviceLists {
  /** @param {(email: string) => Promise<object>} fetch keys/devices */
  constructor(fetch) {
    this.fetch = fetch;
    this.lists = new Map(); // email -> Promise<{identityKey, deviceIds}>
  }

  get(email) {
    if (!this.lists.has(email)) {
      const list = this.fetch(email).then(deviceListOf);
      // A failed fetch is not kept: the next send asks again.
      list.catch(() => this.lists.get(email) === list && this.lists.delete(email));
      this.lists.set(email, list);
    }
    return this.lists.get(email);
  }

  forget(email) {
    this.lists.delete(email);
  }
}
