"""A person using the messenger in their own browser context, through the UI only."""

import itertools
import json
import re
import subprocess
import sys
import time

from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import PASSWORD, LiveServer
from tests.live_server import ROOT, server_env

_numbers = itertools.count(1)
TIMEOUT = 15_000
# Registration hashes the password with the production PBKDF2 cost and makes 100 prekeys.
expect.set_options(timeout=TIMEOUT)


def add_server_device(server: LiveServer, email: str, name: str) -> int:
    """Another device of `email`'s account, made on the server (accounts.devices.device_create),
    as linking (docs/PROTOCOL.md section 18, not served yet) will make one; returns its number.
    It has no keys: the device list, a session bound to it and unlinking need none. The server
    process keeps running; this is a second process on its SQLite database."""
    code = (
        "from accounts.devices import device_create\n"
        "from accounts.models import User\n"
        f"user = User.objects.get(email={email!r})\n"
        f"print(device_create(user=user, name={name!r}).device_id)\n"
    )
    env = server_env("browser-seed", DATABASE_URL=f"sqlite:///{server.db_path}", REDIS_URL="", LOG_LEVEL="WARNING")
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return int(result.stdout.strip().splitlines()[-1])


def link_device(person: "Person", other: "Person") -> int:
    """Makes `other` (a fresh browser context with `person`'s email) another device of
    `person`'s account the way a person does: it signs in, and `person`'s browser links it by
    its link code (link_browser). Returns its device number."""
    other.login()
    link_browser(person.page, other.page)
    return other.local_record("meta", "deviceId")["value"]


class Person:
    def __init__(
        self,
        *,
        browser: Browser,
        server: LiveServer,
        name: str,
        context_options: dict | None = None,
        email: str | None = None,
    ):
        self.browser = browser
        self.server = server
        self.name = name
        self.email = email or f"{name}{next(_numbers)}-{id(self) % 100000}@example.test"
        self.context_options = context_options or {}
        self.dialogs: list[str] = []
        self.page_errors: list[str] = []
        self.console_messages: list[str] = []
        # Every frame the server sent this person's pages over the chat socket, as JSON text.
        self.socket_frames: list[str] = []
        self.context = None
        self.page: Page | None = None
        self.open_browser()

    # --- browser ----------------------------------------------------------------------------

    def open_browser(self) -> Page:
        self.context = self.browser.new_context(base_url=self.server.url, **self.context_options)
        self.context.set_default_timeout(TIMEOUT)
        self.page = self.context.new_page()
        self._watch(self.page)
        return self.page

    def _watch(self, page: Page) -> None:
        def on_dialog(dialog):
            self.dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("console", lambda message: self.console_messages.append(f"{message.type}: {message.text}"))
        page.on("websocket", lambda socket: socket.on("framereceived", lambda frame: self.socket_frames.append(frame)))

    def new_tab(self) -> Page:
        page = self.context.new_page()
        self._watch(page)
        return page

    def go_offline(self) -> dict:
        """Closes the browser context, keeping its cookies and IndexedDB to come back with."""
        self.saved_state = self.context.storage_state(indexed_db=True)
        self.close()
        return self.saved_state

    def come_back(self) -> Page:
        self.context_options = {**self.context_options, "storage_state": self.saved_state}
        page = self.open_browser()
        page.goto("/")
        self.wait_ready()
        return page

    def close(self) -> None:
        if self.context is not None:
            try:
                self.context.close()
            except Exception:  # already closed with the browser
                pass
            self.context = None

    # --- accounts ----------------------------------------------------------------------------

    def register(self) -> "Person":
        page = self.page
        page.goto("/register")
        page.get_by_label("Email").fill(self.email)
        page.get_by_label("Password (at least 10 characters)").fill(PASSWORD)
        page.get_by_label("Repeat the password").fill(PASSWORD)
        page.get_by_role("button", name="Create account").click()
        self.wait_ready()
        return self

    def login(self, page: Page | None = None) -> None:
        page = page or self.page
        self.submit_login(page)
        page.wait_for_url(re.compile(r"/$"))

    def submit_login(self, page: Page | None = None) -> None:
        """Fills in and submits the sign-in form, without waiting for where it leads."""
        page = page or self.page
        if "/login" not in page.url:
            page.goto("/login")
        page.get_by_label("Email").fill(self.email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()

    def sign_out(self, *, erase: bool = False, page: Page | None = None) -> None:
        """Signs out through the sign-out dialog, keeping this browser's data for the account or
        erasing it."""
        page = page or self.page
        page.locator("#logout").click()
        dialog = page.get_by_role("dialog", name="Sign out")
        if erase:
            dialog.get_by_role("button", name=f"Sign out and erase this browser's data for {self.email}").click()
        else:
            dialog.get_by_role("button", name="Sign out", exact=True).click()
        page.wait_for_url(re.compile(r"/login"))

    def start_over(self, *, password: str = PASSWORD, page: Page | None = None) -> None:
        """On the set-up screen: "Start over" with new keys after the password (contacts are told
        the safety number changed), without waiting for where it leads."""
        page = page or self.page
        if page.locator("#start-over-panel").is_hidden():
            page.get_by_role("button", name="Start over", exact=True).click()
        page.get_by_label("Your password, to confirm").fill(password)
        page.get_by_role("button", name="Start over with new keys").click()

    def wait_ready(self, page: Page | None = None) -> None:
        page = page or self.page
        expect(page.locator("body[data-ready='true']")).to_have_count(1)
        expect(page.locator("#connection")).to_have_text("Online")

    # --- contacts ----------------------------------------------------------------------------

    def request_contact(self, other: "Person") -> None:
        page = self.page
        page.get_by_label("Add a contact by email").fill(other.email)
        page.get_by_role("button", name="Send request").click()
        expect(page.locator("#add-contact-info")).to_contain_text(other.email)

    def accept_request_from(self, other: "Person") -> None:
        button = self.page.get_by_role("button", name=f"Accept {other.email}")
        button.click()
        expect(self.contact_button(other)).to_be_visible()

    def contact_button(self, other: "Person", page: Page | None = None):
        return (page or self.page).locator(f"#contact-list button[data-email='{other.email}']")

    def befriend(self, other: "Person") -> None:
        self.request_contact(other)
        other.accept_request_from(self)
        expect(self.contact_button(other)).to_be_visible()

    # --- conversation ------------------------------------------------------------------------

    def open_chat(self, other: "Person", page: Page | None = None) -> None:
        page = page or self.page
        self.contact_button(other, page).click()
        expect(page.locator("#conversation-title")).to_have_text(other.email)

    def send(self, text: str, page: Page | None = None) -> None:
        page = page or self.page
        self.server.plaintexts.append(text)
        box = page.get_by_label("Message", exact=True)
        box.fill(text)
        box.press("Enter")

    def messages(self, page: Page | None = None):
        return (page or self.page).locator("#messages li.message")

    def incoming_texts(self, page: Page | None = None) -> list[str]:
        return (page or self.page).locator("#messages li.message.incoming .text").all_text_contents()

    def outgoing(self, text: str, page: Page | None = None):
        return (page or self.page).locator("#messages li.message.outgoing").filter(has_text=text)

    # --- groups ---------------------------------------------------------------------------------

    def create_group(self, name: str, members: list["Person"]) -> None:
        """Creates a group through "New group" with these contacts, and waits until it is open."""
        page = self.page
        page.get_by_role("button", name="New group").click()
        dialog = page.get_by_role("dialog", name="New group")
        dialog.get_by_label("Group name").fill(name)
        for member in members:
            dialog.get_by_label(member.email, exact=True).check()
        dialog.get_by_role("button", name="Create group").click()
        expect(page.locator("#conversation-title")).to_have_text(name)

    def group_button(self, name: str, page: Page | None = None):
        return (page or self.page).locator("#group-list button.contact").filter(has_text=name)

    def open_group(self, name: str, page: Page | None = None) -> None:
        page = page or self.page
        self.group_button(name, page).click()
        expect(page.locator("#conversation-title")).to_have_text(name)

    def members_dialog(self, page: Page | None = None):
        """Opens the open group's members dialog."""
        page = page or self.page
        page.get_by_role("button", name="Members").click()
        return page.get_by_role("dialog", name=re.compile("members$"))

    def notices(self, page: Page | None = None) -> list[str]:
        """The lines of the open group's history (who created, added, removed, left, renamed)."""
        return (page or self.page).locator("#messages li.message.notice").all_text_contents()

    def group_frames(self) -> list[dict]:
        """The `group_message` frames this person's pages received, oldest first."""
        frames = [json.loads(text) for text in self.socket_frames if '"group_message"' in text]
        return [frame for frame in frames if frame.get("type") == "group_message"]

    # --- inspection ----------------------------------------------------------------------------

    def local_records(self, store: str, page: Page | None = None) -> list[dict]:
        """Every record of one IndexedDB store of this browser (all accounts)."""
        return (page or self.page).evaluate(
            """async (store) => {
              const db = await new Promise((resolve, reject) => {
                const request = indexedDB.open("SecureMessengerDB");
                request.onsuccess = () => resolve(request.result);
                request.onerror = () => reject(request.error);
              });
              const records = await new Promise((resolve, reject) => {
                const request = db.transaction(store, "readonly").objectStore(store).getAll();
                request.onsuccess = () => resolve(request.result);
                request.onerror = () => reject(request.error);
              });
              db.close();
              return records;
            }""",
            store,
        )

    def every_local_record(self, page: Page | None = None) -> dict[str, list[dict]]:
        """Every record of every IndexedDB store of this browser (all accounts), by store, read
        from the page."""
        return (page or self.page).evaluate(
            """async () => {
              const db = await new Promise((resolve, reject) => {
                const request = indexedDB.open("SecureMessengerDB");
                request.onsuccess = () => resolve(request.result);
                request.onerror = () => reject(request.error);
              });
              const out = {};
              for (const store of db.objectStoreNames) {
                out[store] = await new Promise((resolve, reject) => {
                  const request = db.transaction(store, "readonly").objectStore(store).getAll();
                  request.onsuccess = () => resolve(request.result);
                  request.onerror = () => reject(request.error);
                });
              }
              db.close();
              return out;
            }"""
        )

    def web_storage(self, page: Page | None = None) -> dict[str, str]:
        """Every localStorage and sessionStorage entry of the page's origin."""
        return (page or self.page).evaluate(
            """() => {
              const out = {};
              for (const [kind, storage] of [["local", localStorage], ["session", sessionStorage]]) {
                for (let i = 0; i < storage.length; i += 1) {
                  out[`${kind}:${storage.key(i)}`] = storage.getItem(storage.key(i));
                }
              }
              return out;
            }"""
        )

    def local_key_names(self) -> set[str]:
        return {record["name"] for record in self.local_records("signalKeys")}

    def own_identity_key(self) -> str:
        (identity,) = [r for r in self.local_records("signalKeys") if r["name"] == "identity"]
        return identity["value"]["publicKey"]

    @staticmethod
    def _secrets(records) -> list[str]:
        """Every private key in `records` (own keys and the secret parts of ratchet sessions)."""
        secret_fields = {"privateKey", "rootKey", "sendingChainKey", "receivingChainKey", "messageKey"}
        found: set[str] = set()

        def walk(value):
            if isinstance(value, dict):
                for key, item in value.items():
                    if key in secret_fields and isinstance(item, str):
                        found.add(item)
                    else:
                        walk(item)
            elif isinstance(value, list):
                for item in value:
                    walk(item)

        walk(records)
        return sorted(found)

    def private_keys(self) -> list[str]:
        """Every private key this browser holds (own keys and the secret parts of every ratchet
        session), exported from IndexedDB for the leak checks."""
        return self._secrets([self.local_records("signalKeys"), self.local_records("signalSessions")])

    def private_keys_of(self, account: str) -> list[str]:
        """The private keys of `account` (own keys and ratchet secrets) in this browser."""
        records = self.every_local_record()
        stores = ("signalKeys", "signalSessions")
        return self._secrets([r for store in stores for r in records[store] if r["account"] == account])

    def local_record(self, store: str, name: str, page: Page | None = None):
        """The record called `name` (signalKeys, meta) of this browser's one account, or None."""
        found = [r for r in self.local_records(store, page) if r.get("name") == name]
        assert len(found) <= 1, f"{store} {name}: one account per browser expected"
        return found[0] if found else None

    def change_local_record(self, store: str, name: str, changes: dict, page: Page | None = None) -> None:
        """Merges `changes` into the `value` of the record called `name` in IndexedDB, the way
        time passing would have left it (e.g. an older `createdAt`)."""
        (page or self.page).evaluate(
            """async ({store, name, changes}) => {
              const db = await new Promise((resolve, reject) => {
                const request = indexedDB.open("SecureMessengerDB");
                request.onsuccess = () => resolve(request.result);
                request.onerror = () => reject(request.error);
              });
              await new Promise((resolve, reject) => {
                const tx = db.transaction(store, "readwrite");
                const objects = tx.objectStore(store);
                const all = objects.getAll();
                all.onsuccess = () => {
                  const matching = all.result.filter((r) => r.name === name);
                  if (matching.length !== 1) { reject(new Error(`${matching.length} records ${name}`)); return; }
                  const record = matching[0];
                  objects.put({...record, value: {...record.value, ...changes}});
                };
                tx.oncomplete = resolve;
                tx.onerror = () => reject(tx.error);
              });
              db.close();
            }""",
            {"store": store, "name": name, "changes": changes},
        )

    # --- the API, with this browser's own session ---------------------------------------------

    def api_get(self, path: str, page: Page | None = None) -> dict:
        """GET `path` with the page's cookies (what the app's own fetch() sends), as JSON."""
        return (page or self.page).evaluate(
            """async (path) => {
              const response = await fetch(path, {credentials: "same-origin"});
              if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
              return response.json();
            }""",
            path,
        )

    def api(self, method: str, path: str, body: dict | None = None, page: Page | None = None) -> dict:
        """Any API call with the page's cookies and CSRF header: {status, body} (body None for no
        JSON), never raising on an error status."""
        return (page or self.page).evaluate(
            """async ({method, path, body}) => {
              const cookie = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
              const headers = {"X-CSRFToken": cookie ? cookie.slice(10) : ""};
              if (body !== null) headers["Content-Type"] = "application/json";
              const response = await fetch(path, {
                method, headers, credentials: "same-origin", body: body === null ? undefined : JSON.stringify(body),
              });
              return {status: response.status, body: await response.json().catch(() => null)};
            }""",
            {"method": method, "path": path, "body": body},
        )

    def prekey_status(self) -> dict:
        return self.api_get("/api/v1/keys/prekeys/count")

    def claim_bundles(self, other: "Person", count: int) -> list[dict]:
        """Fetches `other`'s key bundle `count` times, each claiming one of their one-time
        prekeys: what `count` first messages from contacts would take."""
        return self.page.evaluate(
            """async ({email, count}) => {
              const bundles = [];
              for (let i = 0; i < count; i += 1) {
                const csrf = document.cookie.split("; ").find((c) => c.startsWith("csrftoken=")).slice(10);
                const response = await fetch("/api/v1/keys/bundle", {
                  method: "POST",
                  headers: {"Content-Type": "application/json", "X-CSRFToken": csrf},
                  body: JSON.stringify({email}),
                });
                if (!response.ok) throw new Error(`bundle: HTTP ${response.status}`);
                bundles.push(await response.json());
              }
              return bundles;
            }""",
            {"email": other.email, "count": count},
        )

    def wait_for_prekey_status(self, predicate, what: str) -> dict:
        """Polls GET keys/prekeys/count (from this browser) until `predicate(status)` holds."""
        last: dict = {}

        def reached() -> bool:
            last.update(self.prekey_status())
            return predicate(last)

        try:
            self.wait_until(reached, what)
        except AssertionError as error:
            raise AssertionError(f"{error}; last status {last}") from None
        return last

    def wait_until(self, condition, what: str, timeout_ms: int = TIMEOUT) -> None:
        """Polls `condition()` (something outside the DOM, e.g. IndexedDB or the API) until it holds."""
        deadline = time.monotonic() + timeout_ms / 1000
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: {what}: not reached in {timeout_ms} ms")
            self.page.wait_for_timeout(200)


def link_browser(existing_page: Page, new_page: Page) -> str:
    """Links the browser of `new_page` (signed in to the account, on the set-up screen) to the
    account's device of `existing_page` (ready), through both UIs as a person would
    (docs/PROTOCOL.md section 18): the new browser shows a link code, the existing one answers it,
    both show the same verification code, the new one confirms and reaches the app, and the
    existing one's dialog says the device is linked and is closed. A link code the new browser
    shows already is the one used. Returns the verification code."""
    code_field = new_page.locator("#link-code")
    if not code_field.is_visible():  # else the code shown already is used
        new_page.get_by_role("button", name="Link to my existing device").click()
    expect(code_field).to_have_value(re.compile(r"^sm-link:1:"))
    code = code_field.input_value()

    existing_page.get_by_role("button", name="Link a new device").click()
    dialog = existing_page.get_by_role("dialog", name="Link a new device")
    dialog.get_by_label("Link code").fill(code)
    dialog.get_by_role("button", name="Link", exact=True).click()
    shown = dialog.locator("#link-offered-code")
    expect(shown).to_have_text(re.compile(r"^\d{3} \d{3}$"))
    verification = shown.text_content()

    expect(new_page.locator("#link-verification")).to_have_text(verification)
    new_page.get_by_role("button", name="They match").click()
    # Ready, or an error that says why not (rather than a time-out).
    expect(new_page.locator("body[data-ready='true'], #link-error:not(:empty)")).to_have_count(1)
    assert new_page.locator("#link-error").text_content() == "", new_page.locator("#link-error").text_content()
    expect(new_page.locator("body[data-ready='true']")).to_have_count(1)
    expect(new_page.locator("#connection")).to_have_text("Online")
    # The existing browser hears of the new device (devices_changed) and says so; Done closes it.
    expect(dialog.locator("#link-linked")).to_contain_text("is now linked to your account")
    dialog.get_by_role("button", name="Done").click()
    expect(dialog).to_be_hidden()
    return verification
