// Registration: the keys are made here; only their public halves go to the server, with a name
// for this browser as the account's first device. The private keys are stored (scoped to the new
// account, with the device number the server gave) only after the server accepted the
// registration, so a failed attempt can never overwrite the keys of an existing account.
import { ApiError, auth, errorMessage } from "../api.js";
import { rememberDeviceWrite, thisDeviceName } from "../devices.js";
import { createDeviceKeys } from "../session.js";
import { openAccountStore } from "../storage.js";

const form = document.getElementById("register-form");
const error = document.getElementById("register-error");
const progress = document.getElementById("register-progress");
const submit = document.getElementById("register-submit");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  const email = form.elements.email.value.trim();
  const password = form.elements.password.value;
  if (!email || !form.elements.email.checkValidity()) {
    error.textContent = "Enter a valid email address.";
    return;
  }
  if (password.length < 10) {
    error.textContent = "The password must be at least 10 characters long.";
    return;
  }
  if (password !== form.elements.password2.value) {
    error.textContent = "The two passwords differ.";
    return;
  }
  submit.disabled = true;
  progress.textContent = "Creating your encryption keys…";
  try {
    const keys = createDeviceKeys();
    progress.textContent = "Creating your account…";
    const user = await auth.register({ email, password, device_name: thisDeviceName(), ...keys.publicKeys });
    // The first device is number 1 (docs/PROTOCOL.md section 15), also for a server that does
    // not say so.
    const device = user.device || { id: 1 };
    const store = await openAccountStore(user);
    await store.write([...keys.writes, rememberDeviceWrite(device)]);
    progress.textContent = "Signing in…";
    try {
      await auth.login(email, password, device.id);
    } catch (loginError) {
      if (loginError instanceof ApiError) {
        window.location.assign("/login?reason=registered");
        return;
      }
      throw loginError;
    }
    window.location.assign("/");
  } catch (err) {
    error.textContent = errorMessage(err);
    progress.textContent = "";
    submit.disabled = false;
  }
});
