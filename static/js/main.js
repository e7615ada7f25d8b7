// The messenger page: wires api, storage, session keys, client, state and ui together.
import { ApiError, auth, errorMessage, keysApi, setSessionExpiredHandler } from "./api.js";
import { MessengerClient } from "./client.js";
import { createDeviceKeys, forgetDeviceWrites, keysMatchServer, ownIdentityKey } from "./session.js";
import { AppState } from "./state.js";
import { accountKey, closeDatabase, openAccountStore } from "./storage.js";
import { mountApp } from "./ui/app.js";
import { mountDeviceSetup } from "./ui/device.js";
import { mountSignOut } from "./ui/signout.js";

const loading = document.getElementById("app-loading");
const state = new AppState();
let client = null;
let erasing = false; // this tab is erasing: its own "erasing" message is not news to it

function toLogin(reason) {
  if (client) client.stop();
  const query = reason ? `?reason=${encodeURIComponent(reason)}` : "";
  window.location.assign(`/login${query}`);
}

setSessionExpiredHandler(() => toLogin("expired"));

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

async function deviceStatus(store) {
  if (!(await store.getKey("identity"))) return "needs-setup";
  const status = await keysApi.prekeyCount();
  return (await keysMatchServer(store, status)) ? "ready" : "replaced";
}

async function setUpThisBrowser(store, password) {
  // A new device: fresh keys; the server replaces the old ones and tells every contact.
  // Local keys are written only after the server accepted them.
  const keys = createDeviceKeys();
  await keysApi.setIdentity({ password, ...keys.publicKeys });
  await store.write([...forgetDeviceWrites(), ...keys.writes]);
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

  const device = await deviceStatus(store);
  loading.hidden = true;
  if (device !== "ready") {
    await mountDeviceSetup({
      reason: device,
      email: me.email,
      setUp: (password) => setUpThisBrowser(store, password),
    });
  }
  state.ownIdentityKey = await ownIdentityKey(store);

  client = new MessengerClient({
    state,
    store,
    onSessionEnded: () => toLogin("expired"),
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
    },
  });
  await client.start();
  document.body.dataset.ready = "true";
}

start().catch((error) => {
  loading.hidden = false;
  loading.textContent = `The messenger could not start: ${errorMessage(error)}`;
});
