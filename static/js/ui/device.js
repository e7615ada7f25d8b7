// "Set up this browser": shown when this browser holds no keys for the signed-in account, or holds
// keys another browser has replaced since.
import { byId, errorMessage, show } from "./dom.js";

export function mountDeviceSetup({ reason, email, setUp }) {
  const panel = byId("device-setup");
  const form = byId("device-form");
  const error = byId("device-error");
  const progress = byId("device-progress");
  const submit = byId("device-submit");
  byId("device-explanation").textContent =
    reason === "replaced"
      ? `${email} was set up in another browser since this one was used: the keys here are no longer the account's. ` +
        "Set up this browser again to use it."
      : `This browser has no encryption keys for ${email}. Private keys never leave the browser that made them, ` +
        "so this browser cannot read or send messages until it is set up as your device.";
  show(panel, true);

  return new Promise((resolve) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      const password = form.elements.password.value;
      if (!password) {
        error.textContent = "Enter your password.";
        return;
      }
      submit.disabled = true;
      progress.textContent = "Creating keys…";
      try {
        await setUp(password);
        form.elements.password.value = "";
        show(panel, false);
        resolve();
      } catch (err) {
        error.textContent = errorMessage(err);
        progress.textContent = "";
        submit.disabled = false;
      }
    });
  });
}
