// The Devices panel (in the sidebar, beside the settings): the account's devices with their name,
// when each was added and last seen, this browser marked; renaming in place, unlinking after a
// confirmation, and "Link a new device" (a dialog: the new device's link code in, the verification
// code out; docs/PROTOCOL.md section 18). DOM only: renders `state.devices` on its change event
// and calls `actions` (renameDevice, unlinkDevice: main.js wires them to the client; linkDevice
// to linking.js).
// A device name is user data: it reaches the page as text only. Returns {openLink(code)}, which
// opens the link dialog with a code filled in (a scanned QR code, main.js).
//
// One <li> per device, kept across renders and updated in place (the list is re-read on every
// connect): a button rebuilt between a press and its release loses the click (ui/app.js says
// more), and a rename being typed must survive a refresh of the list.
import { linkErrorMessage } from "../linking.js";
import { Topic } from "../state.js";
import { byId, el, errorMessage, formatDateTime, formatFull, placeChildren } from "./dom.js";

const NAME_MAX = 64; // accounts/models.py DEVICE_NAME_MAX_LENGTH

function timeElement(iso) {
  const ts = Date.parse(iso);
  if (Number.isNaN(ts)) return el("span", { text: "unknown" });
  return el("time", { datetime: new Date(ts).toISOString(), title: formatFull(ts), text: formatDateTime(ts) });
}

export function mountDevices({ state, actions }) {
  const list = byId("device-list");
  const summary = byId("devices-summary");
  const dialog = byId("unlink-dialog");
  const dialogText = byId("unlink-text");
  const dialogError = byId("unlink-error");
  const confirm = byId("unlink-confirm");
  const cancelUnlink = byId("unlink-cancel");
  const items = new Map(); // device id -> item (see makeItem)
  let unlinking = null; // the device the confirmation asks about
  const linkDialog = byId("link-dialog");
  const linkForm = byId("link-form");
  const linkInput = byId("link-input");
  const linkFormError = byId("link-form-error");
  const linkFormProgress = byId("link-form-progress");
  const linkSubmit = byId("link-submit");
  const linkOffered = byId("link-offered");
  const linkOfferedCode = byId("link-offered-code");
  const linkLinked = byId("link-linked");
  const linkDone = byId("link-done");
  const linkOpened = byId("link-opened");
  let linkedBefore = null; // the device ids when a link code was answered: a new one is the new device

  // --- one device -------------------------------------------------------------------------------

  function makeItem(id) {
    const inputId = `device-name-${id}`;
    const item = {
      device: null,
      editing: false,
      name: el("span", { class: "device-name" }),
      tag: el("span", { class: "device-tag", text: "This browser", hidden: true }),
      dates: el("p", { class: "muted small device-dates" }),
      renameButton: el("button", { type: "button", class: "small secondary", text: "Rename" }),
      unlinkButton: el("button", { type: "button", class: "small secondary danger", text: "Unlink" }),
      input: el("input", { type: "text", id: inputId, name: "name", maxlength: String(NAME_MAX), autocomplete: "off" }),
      save: el("button", { type: "submit", class: "small", text: "Save" }),
      cancel: el("button", { type: "button", class: "small secondary", text: "Cancel" }),
      error: el("p", { class: "error", role: "alert" }),
    };
    item.label = el("label", { for: inputId, class: "visually-hidden" });
    item.buttons = el("div", { class: "row tight" }, item.renameButton, item.unlinkButton);
    item.form = el(
      "form",
      { class: "device-rename", novalidate: true, hidden: true },
      item.label,
      el("div", { class: "row tight" }, item.input, item.save, item.cancel),
      item.error,
    );
    item.li = el(
      "li",
      { class: "device", "data-device-id": String(id) },
      el("div", { class: "device-head" }, item.name, item.tag),
      item.dates,
      item.buttons,
      item.form,
    );
    item.renameButton.addEventListener("click", () => startRename(item));
    item.cancel.addEventListener("click", () => stopRename(item));
    item.input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        stopRename(item);
      }
    });
    item.form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitRename(item);
    });
    item.unlinkButton.addEventListener("click", () => askUnlink(item.device));
    return item;
  }

  function fill(item, device) {
    item.device = device;
    item.li.dataset.current = device.current ? "true" : "false";
    item.name.textContent = device.name;
    item.tag.hidden = !device.current;
    const lastSeen = device.current
      ? el("span", { text: "now" })
      : device.last_seen_at
        ? timeElement(device.last_seen_at)
        : el("span", { text: "not yet" });
    item.dates.replaceChildren(
      el("span", { class: "line" }, "Added ", timeElement(device.created_at)),
      el("span", { class: "line" }, "Last seen ", lastSeen),
    );
    const who = device.current ? `${device.name} (this browser)` : device.name;
    item.renameButton.setAttribute("aria-label", `Rename ${who}`);
    item.unlinkButton.setAttribute("aria-label", `Unlink ${who}`);
    item.label.textContent = `New name for ${who}`;
  }

  function startRename(item) {
    item.editing = true;
    item.error.textContent = "";
    item.input.value = item.device.name;
    item.buttons.hidden = true;
    item.form.hidden = false;
    item.input.focus();
    item.input.select();
  }

  function stopRename(item) {
    item.editing = false;
    item.form.hidden = true;
    item.buttons.hidden = false;
    item.save.disabled = false;
    item.renameButton.focus();
  }

  async function submitRename(item) {
    item.error.textContent = "";
    item.save.disabled = true;
    try {
      await actions.renameDevice(item.device.id, item.input.value);
      stopRename(item);
    } catch (error) {
      item.error.textContent = errorMessage(error);
      item.save.disabled = false;
      item.input.focus();
    }
  }

  // --- the list ---------------------------------------------------------------------------------

  function render() {
    if (!state.devices) {
      summary.textContent = "Loading…";
      return;
    }
    const { list: devices, max } = state.devices;
    const ids = new Set(devices.map((device) => device.id));
    for (const id of items.keys()) if (!ids.has(id)) items.delete(id);
    const nodes = devices.map((device) => {
      if (!items.has(device.id)) items.set(device.id, makeItem(device.id));
      const item = items.get(device.id);
      fill(item, device);
      return item.li;
    });
    placeChildren(list, nodes);
    summary.textContent = max ? `${devices.length} of at most ${max} devices.` : "";
    if (unlinking && !ids.has(unlinking.id) && dialog.open && !confirm.disabled) dialog.close();
    if (linkedBefore && linkDialog.open) {
      const added = devices.find((device) => !linkedBefore.has(device.id));
      if (added) linkLinked.textContent = `“${added.name}” is now linked to your account.`;
    }
  }

  // --- unlinking --------------------------------------------------------------------------------

  function askUnlink(device) {
    if (!device) return;
    unlinking = device;
    dialogError.textContent = "";
    confirm.disabled = false;
    cancelUnlink.disabled = false;
    const email = state.me ? state.me.email : "your account";
    if (device.current) {
      dialogText.textContent =
        `This browser is signed out at once and its encryption keys for ${email} are erased here (your message ` +
        "history stays stored in it). To use it again, sign in and link it from another of your devices.";
      confirm.textContent = "Unlink this browser";
    } else {
      dialogText.textContent =
        `“${device.name}” is signed out at once and can no longer send or receive messages for ${email}. ` +
        "Your safety number does not change.";
      confirm.textContent = `Unlink ${device.name}`;
    }
    if (!dialog.open) dialog.showModal();
  }

  confirm.addEventListener("click", async () => {
    const device = unlinking;
    if (!device) return;
    confirm.disabled = true;
    cancelUnlink.disabled = true;
    dialogError.textContent = "";
    try {
      await actions.unlinkDevice(device.id);
      // Unlinking this browser leaves the page (main.js); the dialog stays until then.
      if (!device.current) dialog.close();
    } catch (error) {
      dialogError.textContent = errorMessage(error);
      confirm.disabled = false;
      cancelUnlink.disabled = false;
    }
  });
  cancelUnlink.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    unlinking = null;
  });

  // --- linking a new device ----------------------------------------------------------------------

  /**
   * Opens the link dialog, with `code` filled in when it came with the address (a scanned QR
   * code). Such a code is from whoever made the link the user opened, so the dialog says to link
   * only a device of one's own; nothing is sent until the user presses Link.
   */
  function openLink(code = "") {
    linkedBefore = null;
    linkOpened.hidden = !code;
    linkForm.hidden = false;
    linkOffered.hidden = true;
    linkInput.value = code;
    linkFormError.textContent = "";
    linkFormProgress.textContent = "";
    linkOfferedCode.textContent = "";
    linkLinked.textContent = "";
    linkSubmit.disabled = false;
    if (!linkDialog.open) linkDialog.showModal();
    linkInput.focus();
  }

  linkForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    linkFormError.textContent = "";
    if (!linkInput.value.trim()) {
      linkFormError.textContent = "Paste the link code the new device shows.";
      linkInput.focus();
      return;
    }
    linkSubmit.disabled = true;
    linkFormProgress.textContent = "Answering the new device…";
    const before = new Set(state.devices ? state.devices.list.map((device) => device.id) : []);
    try {
      const code = await actions.linkDevice(linkInput.value);
      linkedBefore = before;
      linkOfferedCode.textContent = code;
      linkForm.hidden = true;
      linkOffered.hidden = false;
      linkDone.focus();
      render();
    } catch (error) {
      linkFormError.textContent = linkErrorMessage(error);
      linkSubmit.disabled = false;
      linkInput.focus();
    } finally {
      linkFormProgress.textContent = "";
    }
  });
  byId("link-device").addEventListener("click", () => openLink(""));
  byId("link-close").addEventListener("click", () => linkDialog.close());
  linkDone.addEventListener("click", () => linkDialog.close());
  linkDialog.addEventListener("close", () => {
    linkedBefore = null;
    linkInput.value = "";
  });

  state.addEventListener("change", (event) => {
    if (event.detail.topic === Topic.DEVICES) render();
  });
  render();
  return { openLink };
}
