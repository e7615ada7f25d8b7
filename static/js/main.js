// The messenger page: wires api, storage, session keys, client, state and ui together.
import { ApiError, auth, errorMessage, keysApi, setSessionExpiredHandler } from "./api.js";
import { MessengerClient } from "./client.js";
import { createDeviceKeys, forgetDeviceWrites, keysMatchServer, ownIdentityKey } from "./session.js";
import { AppState } from "./state.js";
import { openAccountStore } from "./storage.js";
import { mountApp } from "./ui/app.js";
import { mountDeviceSetup } from "./ui/device.js";

const loading = document.getElementById("app-loading");
const state = new AppState();
let client = null;

function toLogin(reason) {
  if (client) client.stop();
  const query = reason ? `?reason=${encodeURIComponent(reason)}` : "";
  window.location.assign(`/login${query}`);
}

setSessionExpiredHandler(() => toLogin("expired"));

async function signOut() {
  if (client) client.stop();
  try {
    await auth.logout();
  } catch {
    // The cookies are cleared by the server when it answers; if it cannot be reached the
    // session ends with its tokens anyway.
  }
  toLogin("signed-out");
}

document.getElementById("logout").addEventListener("click", signOut);

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
  document.getElementById("me").textContent = me.email;
  const store = await openAccountStore(me);

  const device = await deviceStatus(store);
  loading.hidden = true;
  if (device !== "ready") {
    await mountDeviceSetup({
      reason: device,
      email: me.email,
      setUp: (password) => setUpThisBrowser(store, password),
      signOut,
    });
  }
  state.ownIdentityKey = await ownIdentityKey(store);

  client = new MessengerClient({ state, store, onSessionEnded: () => toLogin("expired") });
  mountApp({
    state,
    actions: {
      openConversation: (email) => client.openConversation(email),
      closeConversation: () => client.closeConversation(),
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
