// The sign-out dialog: sign out and keep this browser's keys and history for the account, or sign
// out and erase them (a shared or borrowed computer: IndexedDB holds the private keys and the
// decrypted history in clear). DOM only; `signOut({erase})` is injected by main.js.
import { byId, errorMessage } from "./dom.js";

export function mountSignOut({ email, signOut }) {
  const dialog = byId("signout-dialog");
  const keep = byId("signout-keep");
  const erase = byId("signout-erase");
  const error = byId("signout-error");
  byId("signout-keep-text").textContent =
    `Signing out keeps the encryption keys and message history of ${email} in this browser, ` +
    "so you can sign in here again and carry on where you left off.";
  erase.textContent = `Sign out and erase this browser's data for ${email}`;

  function open() {
    error.textContent = "";
    keep.disabled = false;
    erase.disabled = false;
    if (!dialog.open) dialog.showModal();
  }

  async function run(options) {
    keep.disabled = true;
    erase.disabled = true;
    try {
      await signOut(options);
    } catch (err) {
      error.textContent = errorMessage(err);
      keep.disabled = false;
      erase.disabled = false;
    }
  }

  byId("logout").addEventListener("click", open);
  byId("device-signout").addEventListener("click", open);
  keep.addEventListener("click", () => run({ erase: false }));
  erase.addEventListener("click", () => run({ erase: true }));
  byId("signout-cancel").addEventListener("click", () => dialog.close());
}
