// The messenger screen: contacts, requests, the open conversation, the safety number dialog.
// DOM only: renders from the state on its change events and calls `actions` (main.js wires them to
// the client). Every piece of user data is set as text. Each event touches only what it names: one
// contact's row, the header, or the messages that changed (ui/messages.js).
import { isGroupKey, Topic } from "../state.js";
import { byId, el, errorMessage, placeChildren, replaceChildren, show } from "./dom.js";
import { groupTitle, mountGroups, otherMembers } from "./groups.js";
import { mountMessageList } from "./messages.js";

const CONNECTION_TEXT = {
  connecting: "Connecting…",
  online: "Online",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

export function mountApp({ state, actions }) {
  const dom = {
    messenger: byId("messenger"),
    connection: byId("connection"),
    notice: byId("notice"),
    noticeText: byId("notice-text"),
    contactList: byId("contact-list"),
    noContacts: byId("no-contacts"),
    incomingSection: byId("incoming-section"),
    incomingList: byId("incoming-list"),
    outgoingSection: byId("outgoing-section"),
    outgoingList: byId("outgoing-list"),
    addForm: byId("add-contact-form"),
    addEmail: byId("add-contact-email"),
    addError: byId("add-contact-error"),
    addInfo: byId("add-contact-info"),
    notify: byId("notify-toggle"),
    empty: byId("conversation-empty"),
    view: byId("conversation-view"),
    title: byId("conversation-title"),
    typing: byId("conversation-typing"),
    messages: byId("messages"),
    jump: byId("jump-latest"),
    composer: byId("composer"),
    input: byId("composer-input"),
    send: byId("send-button"),
    note: byId("composer-note"),
    warning: byId("identity-warning"),
    warningText: byId("identity-warning-text"),
    remove: byId("remove-contact"),
    safety: byId("safety-button"),
    membersButton: byId("members-button"),
    dialog: byId("safety-dialog"),
    safetyIntro: byId("safety-intro"),
    safetyNumber: byId("safety-number"),
    safetyState: byId("safety-state"),
    safetyVerify: byId("safety-verify"),
  };
  let removeArmed = false;

  // --- rendering ------------------------------------------------------------------------------

  function renderConnection() {
    dom.connection.dataset.state = state.connection;
    dom.connection.textContent = CONNECTION_TEXT[state.connection] || state.connection;
  }

  function renderNotice() {
    show(dom.notice, Boolean(state.notice));
    dom.notice.dataset.kind = state.notice ? state.notice.kind : "";
    dom.noticeText.textContent = state.notice ? state.notice.text : "";
  }

  // One <li><button> per contact, kept across renders and updated in place; its contents are not
  // targets of the pointer (app.css: `.contact *`), so a press and a release always hit the button
  // itself. The list changes several times right after sign-in (contacts synced from the server,
  // unread counters, identity checks) and whenever someone types; when it was rebuilt, a click
  // whose button (or the span under the pointer) was replaced between the press and the release
  // was lost: the browser fires `click` only on an element that both hit, still in the page.
  const contactItems = new Map(); // email -> <li>

  function contactItem(email) {
    let item = contactItems.get(email);
    if (!item) {
      item = el(
        "li",
        {},
        el("button", { type: "button", class: "contact", "data-email": email, onclick: () => actions.openConversation(email) }),
      );
      contactItems.set(email, item);
    }
    return item;
  }

  function fillContactButton(button, contact) {
    const changed = contact.identity && contact.identity.changedTo;
    const label = [contact.email];
    if (contact.unread) label.push(`${contact.unread} unread`);
    if (changed) label.push("safety number changed");
    if (contact.email === state.active) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
    button.setAttribute("aria-label", label.join(", "));
    replaceChildren(
      button,
      el("span", { class: "avatar", "aria-hidden": "true", text: contact.email.slice(0, 1).toUpperCase() }),
      el(
        "span",
        { class: "contact-text" },
        el("span", { class: "contact-email", text: contact.email }),
        contact.typing ? el("span", { class: "contact-sub typing", text: "typing…" }) : null,
        changed ? el("span", { class: "contact-sub alert", text: "Safety number changed" }) : null,
      ),
      contact.unread ? el("span", { class: "badge", "aria-hidden": "true", text: String(contact.unread) }) : null,
    );
  }

  /** The list: rows added, removed and put in order; new rows are filled. */
  function renderContacts() {
    const contacts = state.sortedContacts();
    show(dom.noContacts, contacts.length === 0);
    const listed = new Set(contacts.map((contact) => contact.email));
    for (const email of contactItems.keys()) if (!listed.has(email)) contactItems.delete(email);
    const items = contacts.map((contact) => {
      const fresh = !contactItems.has(contact.email);
      const item = contactItem(contact.email);
      if (fresh) fillContactButton(item.firstChild, contact);
      return item;
    });
    placeChildren(dom.contactList, items);
  }

  /** One contact's row (unread, typing, identity, current). */
  function renderContact(email) {
    const contact = state.contacts.get(email);
    const item = contactItems.get(email);
    if (contact && item) fillContactButton(item.firstChild, contact);
  }

  function renderAllContacts() {
    renderContacts();
    for (const email of contactItems.keys()) renderContact(email);
  }

  function requestItem(request, incoming) {
    const buttons = incoming
      ? [
          el("button", {
            type: "button",
            class: "small",
            "aria-label": `Accept ${request.email}`,
            text: "Accept",
            onclick: (event) => answer(event, request, "accept"),
          }),
          el("button", {
            type: "button",
            class: "small secondary",
            "aria-label": `Decline ${request.email}`,
            text: "Decline",
            onclick: (event) => answer(event, request, "reject"),
          }),
        ]
      : [el("span", { class: "muted small", text: "pending" })];
    return el(
      "li",
      { class: "request", "data-email": request.email },
      el("span", { class: "request-email", text: request.email }),
      el("span", { class: "row tight" }, buttons),
    );
  }

  async function answer(event, request, action) {
    event.currentTarget.disabled = true;
    try {
      await actions.answerRequest(request.id, action);
    } catch (error) {
      state.setNotice(errorMessage(error));
      event.target.disabled = false;
    }
  }

  // Kept across renders for the reason given at contactItems: the requests are re-read on every
  // connect, and an Accept button rebuilt between the press and the release lost the click.
  const requestItems = new Map(); // "in:<id>:<email>" / "out:<id>:<email>" -> <li>

  function renderRequestList(list, requests, incoming) {
    const prefix = incoming ? "in" : "out";
    const keys = requests.map((request) => `${prefix}:${request.id}:${request.email}`);
    for (const key of requestItems.keys()) if (key.startsWith(`${prefix}:`) && !keys.includes(key)) requestItems.delete(key);
    requests.forEach((request, i) => {
      if (!requestItems.has(keys[i])) requestItems.set(keys[i], requestItem(request, incoming));
    });
    placeChildren(list, keys.map((key) => requestItems.get(key)));
  }

  function renderRequests() {
    const { incoming, outgoing } = state.requests;
    show(dom.incomingSection, incoming.length > 0);
    show(dom.outgoingSection, outgoing.length > 0);
    renderRequestList(dom.incomingList, incoming, true);
    renderRequestList(dom.outgoingList, outgoing, false);
  }

  const messageList = mountMessageList({
    state,
    actions,
    list: dom.messages,
    jump: dom.jump,
    onError: (error) => state.setNotice(errorMessage(error)),
  });

  /**
   * A warning about a changed safety number: `email`'s, in the conversation with them or in a
   * group they are in (nothing goes to that group until it is accepted, as for them alone).
   */
  function renderIdentityWarning(email, inGroup) {
    show(dom.warning, Boolean(email));
    if (!email) return;
    dom.warning.dataset.email = email;
    dom.warningText.textContent =
      `The safety number with ${email} has changed. They may have set up a new browser, or someone may be ` +
      "trying to intercept the conversation. Compare the new safety number with them (in person or by a call) " +
      `before you continue. Nothing is sent to the new key${inGroup ? ", and nothing to this group," : ""} until you accept it.`;
  }

  function renderGroupHeader(key) {
    const group = state.groups.get(key);
    dom.title.textContent = groupTitle(group);
    const typing = (group && group.typing) || [];
    dom.typing.classList.toggle("members-line", !typing.length);
    dom.typing.textContent = typing.length
      ? `${typing.join(", ")} ${typing.length > 1 ? "are" : "is"} typing…`
      : group
        ? otherMembers(group, state.me && state.me.email).join(", ")
        : "";
    const held = (group && group.held) || [];
    renderIdentityWarning(held[0] || null, true);
    dom.remove.hidden = true;
    dom.safety.hidden = true;
    dom.membersButton.hidden = !group;
    const member = Boolean(group) && !group.left;
    dom.input.disabled = !member;
    dom.send.disabled = !member;
    dom.note.textContent = !member
      ? "You are no longer a member of this group; you can read its history but not send."
      : held.length
        ? "Messages you write now are held until you accept the new safety number."
        : state.connection === "online"
          ? ""
          : "You are offline: messages are kept and sent when the connection is back.";
  }

  function renderConversationHeader() {
    const email = state.active;
    if (isGroupKey(email)) {
      renderGroupHeader(email);
      return;
    }
    dom.safety.hidden = false;
    dom.membersButton.hidden = true;
    dom.typing.classList.remove("members-line");
    const contact = state.contacts.get(email);
    dom.title.textContent = email || "";
    dom.typing.textContent = contact && contact.typing ? `${email} is typing…` : "";
    const changed = contact && contact.identity && contact.identity.changedTo;
    renderIdentityWarning(changed ? email : null, false);
    const isContact = Boolean(contact);
    dom.remove.hidden = !isContact;
    dom.input.disabled = !isContact;
    dom.send.disabled = !isContact;
    dom.note.textContent = !isContact
      ? `${email} is no longer a contact; you can read the history but not send.`
      : changed
        ? "Messages you write now are held until you accept the new safety number."
        : state.connection === "online"
          ? ""
          : "You are offline: messages are kept and sent when the connection is back.";
    if (!removeArmed) dom.remove.textContent = "Remove contact";
  }

  function renderActive() {
    const email = state.active;
    dom.messenger.dataset.view = email ? "conversation" : "list";
    show(dom.empty, !email);
    show(dom.view, Boolean(email));
    removeArmed = false;
    if (email) {
      renderConversationHeader();
      messageList.render({ opened: true });
    }
    renderAllContacts();
  }

  state.addEventListener("change", (event) => {
    const { topic, email } = event.detail;
    if (topic === Topic.CONNECTION) {
      renderConnection();
      if (state.active) renderConversationHeader();
    } else if (topic === Topic.NOTICE) renderNotice();
    else if (topic === Topic.CONTACT) {
      renderContact(email);
      if (email === state.active) renderConversationHeader();
    } else if (topic === Topic.CONTACTS) {
      renderContacts();
      if (state.active) renderConversationHeader();
    } else if (topic === Topic.GROUP || topic === Topic.GROUPS) {
      if (isGroupKey(state.active) && (topic === Topic.GROUPS || email === state.active)) renderConversationHeader();
    } else if (topic === Topic.REQUESTS) renderRequests();
    else if (topic === Topic.ACTIVE) renderActive();
    else if (topic === Topic.SETTINGS) dom.notify.checked = Boolean(state.settings.notifications);
  });

  // --- handlers -------------------------------------------------------------------------------

  byId("notice-close").addEventListener("click", () => state.setNotice(null));

  dom.addForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    dom.addError.textContent = "";
    dom.addInfo.textContent = "";
    const email = dom.addEmail.value.trim();
    if (!email || !dom.addEmail.checkValidity()) {
      dom.addError.textContent = "Enter a valid email address.";
      return;
    }
    const submit = byId("add-contact-submit");
    submit.disabled = true;
    try {
      const result = await actions.requestContact(email);
      dom.addEmail.value = "";
      dom.addInfo.textContent =
        result && result.status === "accepted"
          ? `${result.email} had already asked you: you are now contacts.`
          : `Request sent to ${email}.`;
    } catch (error) {
      dom.addError.textContent = errorMessage(error);
    } finally {
      submit.disabled = false;
    }
  });

  dom.notify.addEventListener("change", () => actions.setNotifications(dom.notify.checked));

  byId("back-button").addEventListener("click", () => actions.closeConversation());

  dom.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    submitMessage();
  });

  dom.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submitMessage();
    }
  });

  dom.input.addEventListener("input", () => {
    if (state.active && dom.input.value) actions.typing(state.active);
  });

  function submitMessage() {
    const email = state.active;
    const text = dom.input.value;
    if (!email || !text.trim()) return;
    dom.input.value = "";
    actions.sendText(email, text).catch((error) => state.setNotice(errorMessage(error)));
    dom.input.focus();
  }

  dom.remove.addEventListener("click", async () => {
    const email = state.active;
    if (!email) return;
    if (!removeArmed) {
      removeArmed = true;
      dom.remove.textContent = `Confirm: remove ${email}`;
      return;
    }
    removeArmed = false;
    try {
      await actions.removeContact(email);
    } catch (error) {
      state.setNotice(errorMessage(error));
    }
  });

  // Safety number dialog
  let dialogEmail = null;
  /** The safety number with the open conversation's contact, or with the group member the warning names. */
  async function openSafety(event) {
    const email = event.currentTarget.id === "identity-review" ? dom.warning.dataset.email : state.active;
    if (!email || isGroupKey(email)) return;
    dialogEmail = email;
    dom.safetyIntro.textContent =
      `Compare this number with the one ${email} sees for you, in person or over a call. ` +
      "If they match, nobody is intercepting your messages.";
    dom.safetyNumber.textContent = "Computing…";
    dom.safetyState.textContent = "";
    dom.dialog.showModal();
    try {
      const info = await actions.safetyNumber(email);
      if (!info) {
        dom.safetyNumber.textContent = "Not available yet: exchange a message first.";
        dom.safetyVerify.hidden = true;
        return;
      }
      dom.safetyNumber.textContent = info.number;
      dom.safetyState.textContent = info.changed
        ? "This is the NEW safety number: it changed since you last talked."
        : info.verified
          ? "You marked this safety number as verified."
          : "Not verified yet.";
      dom.safetyVerify.hidden = info.changed;
      dom.safetyVerify.textContent = info.verified ? "Mark as not verified" : "Mark as verified";
      dom.safetyVerify.dataset.verified = info.verified ? "true" : "false";
    } catch (error) {
      dom.safetyNumber.textContent = errorMessage(error);
    }
  }
  byId("safety-button").addEventListener("click", openSafety);
  byId("identity-review").addEventListener("click", openSafety);
  byId("safety-close").addEventListener("click", () => dom.dialog.close());
  dom.safetyVerify.addEventListener("click", async () => {
    if (!dialogEmail) return;
    await actions.markVerified(dialogEmail, dom.safetyVerify.dataset.verified !== "true");
    dom.dialog.close();
  });
  byId("identity-accept").addEventListener("click", async () => {
    const email = dom.warning.dataset.email;
    if (!email) return;
    try {
      await actions.acceptIdentity(email);
    } catch (error) {
      state.setNotice(errorMessage(error));
    }
  });

  const groups = mountGroups({ state, actions });
  dom.membersButton.addEventListener("click", () => {
    if (isGroupKey(state.active)) groups.openMembers(state.active);
  });

  show(dom.messenger, true);
  renderConnection();
  renderNotice();
  renderRequests();
  renderActive();
  dom.notify.checked = Boolean(state.settings.notifications);
}
