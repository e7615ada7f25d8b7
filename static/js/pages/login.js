// Sign-in page: posts the credentials with this browser's device number for the account
// (docs/PROTOCOL.md section 15); the server answers with HttpOnly cookies bound to that device.
//
// A number sent and `device: null` back means this browser was unlinked from the account while
// it was away (section 19): its keys and sessions for the account are erased here and the page
// says so, and the next sign-in (no number left to send) leads to setting the browser up again.
import { auth, errorMessage } from "../api.js";
import { deviceIdForAccount, deviceIdForLogin, forgetDeviceWrites, rememberDeviceWrite } from "../devices.js";
import { accountKey, closeDatabase, openAccountStore } from "../storage.js";

const form = document.getElementById("login-form");
const error = document.getElementById("login-error");
const info = document.getElementById("login-info");
const submit = document.getElementById("login-submit");

const REASONS = {
  expired: "Your session ended. Sign in again.",
  "signed-out": "You are signed out.",
  erased: "You are signed out, and this browser's keys and history for your account are erased.",
  registered: "Your account was created. Sign in to continue.",
  unlinked:
    "This browser was unlinked from your account. Sign in to link it again from one of your devices " +
    "(or to start over).",
};

function showReason(reason) {
  info.textContent = REASONS[reason] || "";
  info.hidden = !REASONS[reason];
}

showReason(new URLSearchParams(window.location.search).get("reason"));

/**
 * Signs in with the number of the most recent local account of `email`. Should the answer be
 * another account of that email (an older one, deleted, left its data here), the number was not
 * this account's: it signs in again with the right one (null when this browser holds nothing of
 * it), so a session is never bound to a device whose keys are not here.
 * @returns {Promise<{user: object, sent: number | null}>}
 */
async function signIn(email, password) {
  const local = await deviceIdForLogin(email);
  let sent = local.deviceId;
  let user = await auth.login(email, password, sent);
  if (local.account !== accountKey(user)) {
    const right = await deviceIdForAccount(accountKey(user));
    if (right !== sent) {
      sent = right;
      user = await auth.login(email, password, sent);
    }
  }
  return { user, sent };
}

/** This browser's device of `user` is gone: forget it (devices.js) and end the pending session. */
async function forgetUnlinkedDevice(user) {
  await (await openAccountStore(user)).write(forgetDeviceWrites());
  await closeDatabase();
  if ("BroadcastChannel" in window) {
    // A tab of the account still open (main.js) erases too, after its own last write.
    const channel = new BroadcastChannel(`sm:${accountKey(user)}`);
    channel.postMessage({ type: "unlinked" });
    channel.close();
  }
  try {
    await auth.logout();
  } catch {
    // A pending session can do nothing but look at the account; it expires on its own.
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  const email = form.elements.email.value.trim();
  const password = form.elements.password.value;
  if (!email || !password) {
    error.textContent = "Enter your email and password.";
    return;
  }
  submit.disabled = true;
  try {
    const { user, sent } = await signIn(email, password);
    if (sent !== null && !user.device) {
      await forgetUnlinkedDevice(user);
      form.elements.password.value = "";
      showReason("unlinked");
      submit.disabled = false;
      return;
    }
    if (sent !== null && user.device) await (await openAccountStore(user)).write([rememberDeviceWrite(user.device)]);
    // A link code scanned before the sign-in (main.js sent it here in the fragment) goes on to the
    // app, still in the fragment: never to the server.
    const link = window.location.hash.startsWith("#link=") ? window.location.hash : "";
    window.location.assign(`/${link}`);
  } catch (err) {
    error.textContent = errorMessage(err);
    submit.disabled = false;
  }
});
