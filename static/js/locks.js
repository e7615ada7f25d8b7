// Web Locks: serialise work across every tab of this origin (the refresh token, each ratchet
// session, key upkeep). A lock is held until the callback's promise settles.
//
// Without the Web Locks API (very old browsers) the work is serialised within this tab only.

const localQueues = new Map();

function localLock(name, callback) {
  const previous = localQueues.get(name) || Promise.resolve();
  const run = previous.catch(() => undefined).then(() => callback());
  localQueues.set(name, run.catch(() => undefined));
  return run;
}

/** Runs `callback` while holding the exclusive lock `name`; resolves to its result. */
export function withLock(name, callback) {
  if (globalThis.navigator && navigator.locks && navigator.locks.request) {
    return navigator.locks.request(name, () => callback());
  }
  return localLock(name, callback);
}

/** Like withLock, but gives up at once (resolves to `undefined`) when another holder has it. */
export function withLockIfAvailable(name, callback) {
  if (globalThis.navigator && navigator.locks && navigator.locks.request) {
    return navigator.locks.request(name, { ifAvailable: true }, (lock) => (lock ? callback() : undefined));
  }
  return localLock(name, callback);
}
