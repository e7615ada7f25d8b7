// Groups on the messenger screen: the sidebar's list of groups, the "New group" dialog (a name and
// some contacts) and the members dialog of the open group (rename, add a contact, remove a member
// or make them admin when we are admin, leave). DOM only, as ui/app.js: renders from the state's
// change events and calls `actions`; every piece of user data is set as text. The group's
// conversation itself is ui/app.js's and ui/messages.js's, under the group's key (state.js).
//
// The server decides who may do what (docs/PROTOCOL.md section 21); the buttons shown follow the
// same rules so that nobody is offered what would be refused, and a refusal is shown as its reason.
import { Topic } from "../state.js";
import { byId, el, errorMessage, placeChildren, replaceChildren, show } from "./dom.js";

/** A group's name as shown: the one its members sent, or a stand-in until it arrives. */
export function groupTitle(group) {
  return group && group.name ? group.name : "Unnamed group";
}

/** The emails of a group's members other than `me`, for a subtitle. */
export function otherMembers(group, me) {
  const own = String(me || "").toLowerCase();
  return group.members.map((member) => member.email).filter((email) => email.toLowerCase() !== own);
}

export function mountGroups({ state, actions }) {
  const dom = {
    list: byId("group-list"),
    none: byId("no-groups"),
    newButton: byId("group-new"),
    dialog: byId("group-dialog"),
    form: byId("group-form"),
    name: byId("group-name"),
    candidates: byId("group-candidates"),
    noCandidates: byId("group-no-candidates"),
    formError: byId("group-form-error"),
    create: byId("group-create"),
    members: byId("members-dialog"),
    membersTitle: byId("members-title"),
    renameForm: byId("rename-form"),
    renameInput: byId("rename-input"),
    memberList: byId("member-list"),
    addForm: byId("add-member-form"),
    addSelect: byId("add-member-select"),
    membersError: byId("members-error"),
    leave: byId("group-leave"),
  };
  const me = () => (state.me ? state.me.email : "");

  // --- the sidebar list: one <li><button> per group, kept across renders (ui/app.js contactItems says why)

  const items = new Map(); // group key -> <li>

  function item(key) {
    if (!items.has(key)) {
      items.set(
        key,
        el("li", {}, el("button", { type: "button", class: "contact", "data-group": key, onclick: () => actions.openConversation(key) })),
      );
    }
    return items.get(key);
  }

  function fill(button, group) {
    const title = groupTitle(group);
    const held = group.held || [];
    const typing = group.typing || [];
    const label = [`Group ${title}`];
    if (group.unread) label.push(`${group.unread} unread`);
    if (held.length) label.push("a member's safety number changed");
    if (group.left) label.push("you are no longer a member");
    if (group.key === state.active) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
    button.setAttribute("aria-label", label.join(", "));
    const sub = group.left
      ? el("span", { class: "contact-sub", text: "You are no longer a member" })
      : typing.length
        ? el("span", { class: "contact-sub typing", text: `${typing[0]} is typing…` })
        : el("span", { class: "contact-sub", text: `${group.members.length} members` });
    replaceChildren(
      button,
      el("span", { class: "avatar group", "aria-hidden": "true", text: title.slice(0, 1).toUpperCase() }),
      el(
        "span",
        { class: "contact-text" },
        el("span", { class: "contact-email group-name", text: title }),
        sub,
        held.length ? el("span", { class: "contact-sub alert", text: "Safety number changed" }) : null,
      ),
      group.unread ? el("span", { class: "badge", "aria-hidden": "true", text: String(group.unread) }) : null,
    );
  }

  function renderList() {
    const groups = state.sortedGroups();
    show(dom.none, groups.length === 0);
    const listed = new Set(groups.map((group) => group.key));
    for (const key of items.keys()) if (!listed.has(key)) items.delete(key);
    placeChildren(
      dom.list,
      groups.map((group) => {
        const li = item(group.key);
        fill(li.firstChild, group);
        return li;
      }),
    );
  }

  function renderRow(key) {
    const group = state.groups.get(key);
    const li = items.get(key);
    if (group && li) fill(li.firstChild, group);
    if (key === openKey && dom.members.open) renderMembers();
  }

  // --- "New group" ---------------------------------------------------------------------------------

  function openCreate() {
    dom.formError.textContent = "";
    dom.name.value = "";
    dom.create.disabled = false;
    const contacts = state.sortedContacts().map((contact) => contact.email).sort((a, b) => a.localeCompare(b));
    replaceChildren(
      dom.candidates,
      contacts.map((email) =>
        el("li", {}, el("label", {}, el("input", { type: "checkbox", name: "member", value: email }), el("span", { text: email }))),
      ),
    );
    show(dom.noCandidates, contacts.length === 0);
    dom.dialog.showModal();
    dom.name.focus();
  }

  dom.newButton.addEventListener("click", openCreate);
  byId("group-cancel").addEventListener("click", () => dom.dialog.close());

  dom.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    dom.formError.textContent = "";
    const name = dom.name.value.trim();
    const emails = [...dom.candidates.querySelectorAll("input:checked")].map((input) => input.value);
    if (!name) {
      dom.formError.textContent = "Give the group a name.";
      return;
    }
    if (!emails.length) {
      dom.formError.textContent = "Choose at least one contact.";
      return;
    }
    dom.create.disabled = true;
    try {
      const key = await actions.createGroup(name, emails);
      dom.dialog.close();
      await actions.openConversation(key);
    } catch (error) {
      dom.formError.textContent = errorMessage(error);
    } finally {
      dom.create.disabled = false;
    }
  });

  // --- the members dialog of the open group ----------------------------------------------------------

  let openKey = null; // the group whose members the dialog shows

  function memberItem(group, member) {
    const isMe = member.email.toLowerCase() === me().toLowerCase();
    const admin = group.role === "admin" && !group.left;
    const buttons = [];
    if (admin && !isMe && member.role !== "admin") {
      buttons.push(
        el("button", {
          type: "button",
          class: "small secondary",
          "aria-label": `Make ${member.email} admin`,
          text: "Make admin",
          onclick: (event) => act(event.currentTarget, () => actions.makeGroupAdmin(group.key, member.email)),
        }),
      );
    }
    if (admin && !isMe) {
      buttons.push(
        el("button", {
          type: "button",
          class: "small secondary danger",
          "aria-label": `Remove ${member.email}`,
          text: "Remove",
          onclick: (event) => act(event.currentTarget, () => actions.removeGroupMember(group.key, member.email)),
        }),
      );
    }
    return el(
      "li",
      { class: "member", "data-email": member.email },
      el("span", { class: "member-email", text: isMe ? `${member.email} (you)` : member.email }),
      member.role === "admin" ? el("span", { class: "device-tag", text: "admin" }) : null,
      buttons,
    );
  }

  // What the dialog shows, as last rendered: a group's row changes often (unread, typing), and
  // rebuilding the buttons then could lose a click in progress (ui/app.js contactItems).
  let shown = null;

  function renderMembers() {
    const group = state.groups.get(openKey);
    if (!group) {
      dom.members.close();
      return;
    }
    const contacts = state.sortedContacts().map((contact) => contact.email);
    const signature = JSON.stringify([group.name, group.role, group.left, group.members, contacts]);
    if (signature === shown) return;
    shown = signature;
    dom.membersTitle.textContent = `${groupTitle(group)}: ${group.members.length} members`;
    if (document.activeElement !== dom.renameInput) dom.renameInput.value = group.name || "";
    show(dom.renameForm, !group.left);
    replaceChildren(dom.memberList, group.members.map((member) => memberItem(group, member)));
    const inGroup = new Set(group.members.map((member) => member.email.toLowerCase()));
    const addable = state
      .sortedContacts()
      .map((contact) => contact.email)
      .filter((email) => !inGroup.has(email.toLowerCase()))
      .sort((a, b) => a.localeCompare(b));
    replaceChildren(dom.addSelect, addable.map((email) => el("option", { value: email, text: email })));
    show(dom.addForm, !group.left && addable.length > 0);
    show(dom.leave, !group.left);
  }

  /** Runs a membership action from `button`, showing a refusal in the dialog. */
  async function act(button, action) {
    if (button) button.disabled = true;
    dom.membersError.textContent = "";
    try {
      await action();
    } catch (error) {
      dom.membersError.textContent = errorMessage(error);
    } finally {
      if (button && button.isConnected) button.disabled = false;
    }
    if (dom.members.open) {
      shown = null; // the button pressed is enabled again
      renderMembers();
    }
  }

  function openMembers(key) {
    openKey = key;
    shown = null;
    dom.membersError.textContent = "";
    renderMembers();
    if (state.groups.has(key) && !dom.members.open) dom.members.showModal();
  }

  dom.renameForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = dom.renameInput.value.trim();
    if (!openKey || !name) return;
    act(event.submitter, () => actions.renameGroup(openKey, name));
  });

  dom.addForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const email = dom.addSelect.value;
    if (!openKey || !email) return;
    act(event.submitter, () => actions.addGroupMember(openKey, email));
  });

  let leaveArmed = false;
  dom.leave.addEventListener("click", async (event) => {
    if (!openKey) return;
    if (!leaveArmed) {
      leaveArmed = true;
      dom.leave.textContent = "Confirm: leave the group";
      return;
    }
    await act(event.currentTarget, () => actions.leaveGroup(openKey));
    if (!dom.membersError.textContent) dom.members.close();
  });

  byId("members-close").addEventListener("click", () => dom.members.close());
  dom.members.addEventListener("close", () => {
    openKey = null;
    leaveArmed = false;
    dom.leave.textContent = "Leave the group";
  });

  state.addEventListener("change", (event) => {
    const { topic, email } = event.detail;
    if (topic === Topic.GROUPS) renderList();
    else if (topic === Topic.GROUP) renderRow(email);
    else if (topic === Topic.ACTIVE) for (const key of items.keys()) renderRow(key);
    else if (topic === Topic.CONTACTS && dom.members.open) renderMembers();
  });

  renderList();
  return { openMembers };
}
