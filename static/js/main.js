// The messenger page: wires api, storage, session keys, client, state and ui together.
import {
  ApiError,
  auth,
  devicesApi,
  errorMessage,
  keysApi,
  setDeviceRemovedHandler,
  setSessionExpiredHandler,
} from "./api.js";
import { MessengerClient } from "./client.js";
import { forgetDeviceWrites, rememberDeviceWrite, storedDeviceId, thisDeviceName } from "./devices.js";
import { NewDeviceLink, offerLink, takeLinkFragment } from "./linking.js";
import { createDeviceKeys, keysMatchServer, ownIdentityKey } from "./session.js";
import { AppState } from "./state.js";
import { accountKey, closeDatabase, openAccountStore } from "./storage.js";
import { mountApp } from "./ui/app.js";
import { mountDeviceSetup } from "./ui/device.js";
import { mountDevices } from "./ui/devices.js";
import { mountSignOut } from "./ui/signout.js";

const loading = document.getElementById("app-loading");
// A link code from the QR code (`/#link=<code>`): read and removed from the address bar before
// anything else; offered in the Devices panel once this browser is ready (linking.js).
const linkCode = takeLinkFragment(window.location, window.history);
const state = new AppState();
let client = null;
let erasing = false; // this tab is erasing: its own "erasing" message is not news to it
let leaving = false; // this tab is on its way to the sign-in page: the first reason given stands

function toLogin(reason) {
  if (client) client.stop();
  if (leaving) return;
  leaving = true;
  const query = reason ? `?reason=${encodeURIComponent(reason)}` : "";
  // A scanned link code waits in the fragment through the sign-in (pages/login.js brings it back).
  const fragment = linkCode ? `#link=${linkCode}` : "";
  window.location.assign(`/login${query}${fragment}`);
}

setSessionExpiredHandler(() => toLogin("expired"));
setDeviceRemovedHandler(() => unlinked());

let unlinking = null;

/**
 * The server closed this tab's socket for good (4403, or 4401 with no session left to refresh).
 * The close reason `device_removed` would tell an unlinked browser from an ended session
 * (socket.js acts on it), but daphne, the ASGI server, does not pass close reasons on: so the API
 * is asked. A removed device's token is answered 401 `device_removed` and api.js calls
 * unlinked(); an ended session's 401 fails to refresh and api.js sends the tab to sign in.
 */
async function sessionEnded() {
  if (client) client.stop();
  try {
    await auth.me();
  } catch {
    // api.js has acted on a 401; anything else (the server unreachable) ends the session too.
  }
  if (!unlinking) toLogin("expired");
}

/**
 * This browser was unlinked from the account (docs/PROTOCOL.md section 19: a 401
 * `device_removed`, the socket closed 4403 with that reason, unlinking itself in the Devices
 * panel, a pending session although it holds a removed device's keys). Its keys and sessions for
 * the account are erased (devices.js forgetDeviceWrites: a removed device still holds the
 * identity key, section 20, and must not keep it), the decrypted history stays stored untouched,
 * and the sign-in page says what happened. The account's other tabs are told, so each erases
 * after its own last write (as erasedElsewhere does, with the same fresh-connection rule).
 *
 * No loop: the next sign-in sends no number (no keys are left), gets a pending session, and the
 * app offers to set this browser up. Without the account (auth/me itself was refused) nothing can
 * be erased here: the sign-in page finds out, because it sends the stored number and gets null.
 */
function unlinked({ told = false } = {}) {
  if (!unlinking) unlinking = leaveUnlinked(told);
  return unlinking;
}

async function leaveUnlinked(told) {
  if (client) client.stop();
  if (!state.me) {
    toLogin("expired");
    return;
  }
  if (!told && "BroadcastChannel" in window) {
    const channel = new BroadcastChannel(`sm:${accountKey(state.me)}`);
    channel.postMessage({ type: "unlinked" });
    channel.close();
  }
  try {
    await closeDatabase();
    await (await openAccountStore(state.me)).write(forgetDeviceWrites());
  } finally {
    await closeDatabase();
    try {
      await auth.logout();
    } catch {
      // The server refuses this device's tokens already; logout only clears the cookies.
    }
    toLogin("unlinked");
  }
}

/**
 * Another tab is erasing this account's data. This tab stops, closes its database connection and
 * erases the account's records itself through a fresh connection before it leaves. Stopping alone
 * is not enough: until this tab heard the news it could still start writes (a decrypted message,
 * a ratchet step, fresh one-time prekeys) that IndexedDB orders after the other tab's clear. A
 * clear made here is ordered after every write this tab started, and a closed connection starts
 * no more. Listened to from the start, so a tab on the set-up screen (no client yet) erases too.
 */
async function erasedElsewhere() {
  if (client) client.stop();
  await closeDatabase();
  try {
    await (await openAccountStore(state.me)).erase();
  } finally {
    await closeDatabase();
    toLogin("erased");
  }
}

function listenForEraseElsewhere() {
  if (!("BroadcastChannel" in window)) return;
  const channel = new BroadcastChannel(`sm:${accountKey(state.me)}`);
  channel.onmessage = (event) => {
    if (event.data?.type === "unlinked") {
      channel.close();
      unlinked({ told: true });
      return;
    }
    if (event.data?.type !== "erasing" || erasing) return;
    erasing = true;
    channel.close();
    erasedElsewhere();
  };
}

/**
 * Signs out; with `erase`, also deletes everything this browser holds for the account (keys,
 * sessions, history, outbox, settings), for a shared or borrowed computer.
 *
 * Erasing: the client stops, other tabs of the account are told to erase too (`erasedElsewhere`),
 * this tab's database connection is closed (work of this tab still under way can then no longer
 * write), and the account's records are deleted through a fresh connection in one transaction,
 * before the server session ends. If the erase fails, the server session is kept and the dialog
 * says why (the client was stopped: reloading the page carries on, or the user tries again).
 */
async function signOut({ erase = false } = {}) {
  if (client) client.stop();
  if (erase) {
    erasing = true;
    if ("BroadcastChannel" in window) {
      const channel = new BroadcastChannel(`sm:${accountKey(state.me)}`);
      channel.postMessage({ type: "erasing" }); // client.js: the other tabs stop and leave
      channel.close();
    }
    await closeDatabase();
    await (await openAccountStore(state.me)).erase();
    await closeDatabase();
  }
  try {
    await auth.logout();
  } catch {
    // The cookies are cleared by the server when it answers; if it cannot be reached the
    // session ends with its tokens anyway.
  }
  toLogin(erase ? "erased" : "signed-out");
}

/**
 * What this browser is for the signed-in account (docs/PROTOCOL.md sections 15 and 19):
 * - "ready": the session is bound to the device whose keys are here;
 * - "needs-setup": no keys here (a pending session, or a bound one that lost its data);
 * - "replaced": keys here, but not the account's identity key any more;
 * - "unlinked": a pending session although keys are here, and their device is no longer active;
 * - "rebind": the session is bound to another device than the one whose keys are here (or is
 *   pending while that device is active). These keys must not serve another device's session (its
 *   prekeys would be replaced by ours), and signing that session out would end the other
 *   device's sessions too: the sign-in page starts a session for this browser's own device.
 */
async function deviceStatus(store, me) {
  const hasKeys = Boolean(await store.getKey("identity"));
  if (!hasKeys) return "needs-setup";
  const ours = await storedDeviceId(store);
  if (!me.device) {
    const { devices } = await devicesApi.list();
    return devices.some((device) => device.id === ours) ? "rebind" : "unlinked";
  }
  if (me.device.id !== ours) return "rebind";
  const status = await keysApi.prekeyCount();
  if (!(await keysMatchServer(store, status))) return "replaced";
  // A database from before devices: its keys are device 1 (devices.js), now written down.
  if ((await store.getMeta("deviceId")) === null) await store.write([rememberDeviceWrite(me.device)]);
  return "ready";
}

async function setUpThisBrowser(store, password) {
  // Start over as a new device: fresh keys; the server makes them the account's, removes every
  // other device and tells every contact. Local keys are written only after the server accepted
  // them, together with the number it gave this device.
  const keys = createDeviceKeys();
  const answer = await keysApi.setIdentity({ password, device_name: thisDeviceName(), ...keys.publicKeys });
  const device = answer && answer.device ? answer.device : null;
  await store.write([...forgetDeviceWrites(), ...keys.writes, ...(device ? [rememberDeviceWrite(device)] : [])]);
  state.setMe({ ...state.me, device });
}

/** The existing device answered this browser's link and the user saw the codes match. */
async function linkThisBrowser(store, run) {
  const answer = await run.confirm(store);
  state.setMe({ ...state.me, device: answer.device });
}

async function start() {
  let me;
  try {
    me = await auth.me();
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      toLogin();
      return;
    }
    loading.textContent = errorMessage(error);
    return;
  }
  state.setMe(me);
  listenForEraseElsewhere();
  document.getElementById("me").textContent = me.email;
  mountSignOut({ email: me.email, signOut });
  const store = await openAccountStore(me);

  const device = await deviceStatus(store, me);
  if (device === "unlinked") {
    await unlinked();
    return;
  }
  if (device === "rebind") {
    toLogin("expired");
    return;
  }
  loading.hidden = true;
  if (device !== "ready") {
    await mountDeviceSetup({
      reason: device,
      email: me.email,
      scanned: Boolean(linkCode),
      setUp: (password) => setUpThisBrowser(store, password),
      openLink: () => NewDeviceLink.open(),
      completeLink: (run) => linkThisBrowser(store, run),
    });
  }
  state.ownIdentityKey = await ownIdentityKey(store);

  client = new MessengerClient({
    state,
    store,
    onSessionEnded: () => sessionEnded(),
    onDeviceRemoved: () => unlinked(),
  });
  mountApp({
    state,
    actions: {
      openConversation: (email) => client.openConversation(email),
      closeConversation: () => client.closeConversation(),
      loadOlder: (email) => client.loadOlder(email),
      loadNewer: (email) => client.loadNewer(email),
      jumpToLatest: (email) => client.jumpToLatest(email),
      sendText: (email, text) => client.sendText(email, text),
      retryMessage: (id) => client.retryMessage(id),
      typing: (email) => client.typingInput(email),
      requestContact: (email) => client.requestContact(email),
      answerRequest: (id, action) => client.answerRequest(id, action),
      removeContact: (email) => client.removeContact(email),
      safetyNumber: (email) => client.safetyNumber(email),
      markVerified: (email, verified) => client.markVerified(email, verified),
      acceptIdentity: (email) => client.acceptIdentity(email),
      setNotifications: (enabled) => client.setNotifications(enabled),
      createGroup: (name, emails) => client.createGroup(name, emails),
      addGroupMember: (key, email) => client.addGroupMember(key, email),
      removeGroupMember: (key, email) => client.removeGroupMember(key, email),
      leaveGroup: (key) => client.leaveGroup(key),
      makeGroupAdmin: (key, email) => client.makeGroupAdmin(key, email),
      renameGroup: (key, name) => client.renameGroup(key, name),
    },
  });
  const devicesPanel = mountDevices({
    state,
    actions: {
      renameDevice: (id, name) => client.renameDevice(id, name),
      unlinkDevice: (id) => client.unlinkDevice(id),
      // Linking lives in linking.js for both sides; the new device appears through devices_changed.
      linkDevice: (code) => offerLink(store, code),
    },
  });
  if (linkCode && device === "ready") devicesPanel.openLink(linkCode);
  await client.start();
  document.body.dataset.ready = "true";
}

start().catch((error) => {
  loading.hidden = false;
  loading.textContent = `The messenger could not start: ${errorMessage(error)}`;
});
