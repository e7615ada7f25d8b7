// "Set up this browser": shown when this browser holds no keys for the signed-in account, or holds
// keys another browser has replaced since. Two ways on:
// - Link to my existing device (first, the usual case; docs/PROTOCOL.md section 18): the link code
//   as text and QR code, polled every 2 s for the existing device's answer, then the verification
//   code with "They match" / "They don't match". The answer is opened only after "They match".
// - Start over: new keys after the password, with the warning that contacts see a new safety number.
// DOM only: `openLink` and `completeLink` (main.js, linking.js) do the work.
import { DECLINED_MESSAGE, LINK_POLL_MS, linkErrorMessage, linkUrl } from "../linking.js";
import { byId, errorMessage, formatTime, show } from "./dom.js";
import { qrSvg } from "./qr.js";

/** Errors worth polling through: the server unreachable, busy or failing for a moment. */
const isTransient = (error) => Boolean(error) && (error.status === 0 || error.status === 429 || error.status >= 500);

export function mountDeviceSetup({ reason, email, scanned = false, setUp, openLink, completeLink }) {
  const panel = byId("device-setup");
  // A link code scanned here is for a browser that is already a device of the account.
  byId("device-scanned").hidden = !scanned;
  byId("device-explanation").textContent =
    reason === "replaced"
      ? `${email} was set up in another browser since this one was used: the keys here are no longer the account's. ` +
        "Link this browser to a device of yours, or start over."
      : `This browser has no encryption keys for ${email}. Private keys never leave the devices that hold them, ` +
        "so this browser cannot read or send messages until it is linked to a device of yours (or you start over).";
  show(panel, true);

  const linkPanel = byId("link-panel");
  const request = byId("link-request");
  const qr = byId("link-qr");
  const codeField = byId("link-code");
  const expiry = byId("link-expiry");
  const verify = byId("link-verify");
  const verification = byId("link-verification");
  const match = byId("link-match");
  const mismatch = byId("link-mismatch");
  const linkProgress = byId("link-progress");
  const linkError = byId("link-error");
  const newCode = byId("link-new");
  const cancel = byId("link-cancel");
  const startOverPanel = byId("start-over-panel");
  const form = byId("device-form");
  const error = byId("device-error");
  const progress = byId("device-progress");
  const submit = byId("device-submit");

  let run = null; // the NewDeviceLink shown, if any
  let timer = null;
  let attempts = 0; // the latest startLink wins: a link opened for an earlier one is cancelled

  return new Promise((resolve) => {
    function finish() {
      stopPolling();
      window.removeEventListener("pagehide", stopPolling);
      show(panel, false);
      resolve();
    }

    // --- linking ----------------------------------------------------------------------------

    function stopPolling() {
      clearTimeout(timer);
      timer = null;
    }

    /** Drops the link shown (cancelled on the server, best effort: it expires anyway). */
    function dropRun() {
      attempts += 1; // a link still being opened is cancelled when it arrives
      stopPolling();
      const old = run;
      run = null;
      if (old) old.cancel().catch(() => {});
    }

    function resetLinkView() {
      show(request, false);
      show(verify, false);
      qr.replaceChildren();
      codeField.value = "";
      expiry.textContent = "";
      verification.textContent = "";
      linkError.textContent = "";
      linkProgress.textContent = "";
      match.disabled = false;
      mismatch.disabled = false;
    }

    async function startLink() {
      dropRun();
      resetLinkView();
      show(startOverPanel, false);
      show(linkPanel, true);
      show(newCode, false);
      show(cancel, false);
      linkProgress.textContent = "Making a link code…";
      const attempt = ++attempts;
      let opened;
      try {
        opened = await openLink();
      } catch (err) {
        if (attempt === attempts) fail(err);
        return;
      }
      if (attempt !== attempts) {
        opened.cancel().catch(() => {});
        return;
      }
      run = opened;
      linkProgress.textContent = "Waiting for your existing device…";
      codeField.value = run.code;
      qr.replaceChildren(qrSvg(linkUrl(window.location.origin, run.code), "QR code of the link code"));
      expiry.textContent = Number.isNaN(run.expiresAt)
        ? "The code works for 10 minutes."
        : `The code works until ${formatTime(run.expiresAt)}.`;
      show(request, true);
      show(newCode, true);
      show(cancel, true);
      schedulePoll();
    }

    function schedulePoll() {
      stopPolling();
      timer = setTimeout(pollOnce, LINK_POLL_MS);
    }

    async function pollOnce() {
      const current = run;
      if (!current) return;
      let code;
      try {
        code = await current.poll();
      } catch (err) {
        if (current !== run) return;
        if (isTransient(err)) {
          linkProgress.textContent = `${errorMessage(err)} Still trying…`;
          schedulePoll();
          return;
        }
        fail(err);
        return;
      }
      if (current !== run) return;
      if (code === null) {
        linkProgress.textContent = "Waiting for your existing device…";
        schedulePoll();
        return;
      }
      show(request, false);
      qr.replaceChildren();
      verification.textContent = code;
      linkProgress.textContent = "";
      show(verify, true);
      show(newCode, false);
    }

    /** The link run is over with an error: say why, offer a new code. */
    function fail(err) {
      dropRun();
      resetLinkView();
      linkError.textContent = linkErrorMessage(err);
      show(newCode, true);
      show(cancel, false);
    }

    match.addEventListener("click", async () => {
      const current = run;
      if (!current) return;
      match.disabled = true;
      mismatch.disabled = true;
      choices(false);
      show(cancel, false);
      linkProgress.textContent = "Linking this browser…";
      try {
        await completeLink(current);
        run = null;
        finish();
      } catch (err) {
        if (current === run) fail(err);
      } finally {
        choices(true);
      }
    });

    mismatch.addEventListener("click", async () => {
      const current = run;
      if (!current) return;
      run = null;
      stopPolling();
      match.disabled = true;
      mismatch.disabled = true;
      await current.decline();
      resetLinkView();
      linkError.textContent = DECLINED_MESSAGE;
      show(newCode, true);
      show(cancel, false);
    });

    /** The two ways on stay closed while this browser is being linked. */
    function choices(enabled) {
      for (const id of ["link-start", "start-over-show"]) byId(id).disabled = !enabled;
    }

    newCode.addEventListener("click", () => startLink());
    cancel.addEventListener("click", () => {
      dropRun();
      resetLinkView();
      show(linkPanel, false);
    });
    byId("link-start").addEventListener("click", () => startLink());
    byId("link-copy").addEventListener("click", async () => {
      codeField.select();
      try {
        await navigator.clipboard.writeText(codeField.value);
        linkProgress.textContent = "Copied. Waiting for your existing device…";
      } catch {
        linkProgress.textContent = "Copying is not allowed here: the code is selected, copy it with the keyboard.";
      }
    });
    // Leaving the page stops the polling; the link expires on its own.
    window.addEventListener("pagehide", stopPolling);

    // --- start over ---------------------------------------------------------------------------

    byId("start-over-show").addEventListener("click", () => {
      dropRun();
      resetLinkView();
      show(linkPanel, false);
      show(startOverPanel, true);
      form.elements.password.focus();
    });

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
        finish();
      } catch (err) {
        error.textContent = errorMessage(err);
        progress.textContent = "";
        submit.disabled = false;
      }
    });
  });
}
