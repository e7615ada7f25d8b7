"""The command line: register, login, contacts, send, inbox, safety number and clear errors."""

import subprocess
import sys

import pytest

from messenger_client.cli import main
from tests.client.conftest import PASSPHRASE, PASSWORD
from tests.client.helpers import add_device, new_email, stored_account
from tests.live_server import ROOT


@pytest.fixture
def cli(client_server, monkeypatch, capsys):
    monkeypatch.setenv("MESSENGER_SERVER", client_server.url)
    monkeypatch.setenv("MESSENGER_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("MESSENGER_PASSWORD", PASSWORD)

    def run(state, *argv) -> tuple[int, str, str]:
        code = main(["--state", str(state), *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_two_terminal_users_register_befriend_chat_and_compare_safety_numbers(cli, tmp_path):
    alice, bob = new_email("alice"), new_email("bob")
    a, b = tmp_path / "alice.sqlite3", tmp_path / "bob.sqlite3"
    assert cli(a, "register", alice)[0] == 0
    assert cli(b, "register", bob)[0] == 0
    assert cli(a, "contacts", "add", bob) == (0, f"Contact request sent to {bob}.\n", "")
    code, out, _ = cli(b, "contacts")
    assert f"request from {alice}" in out
    assert cli(b, "contacts", "accept", alice)[0] == 0
    assert bob in cli(a, "contacts", "list")[1]

    code, out, _ = cli(a, "send", bob, "Hello from the terminal")
    assert code == 0
    assert out.startswith(f"Sent to {bob}")
    assert cli(b, "inbox", "--read")[1] == f"[{alice}] Hello from the terminal\n"
    assert cli(b, "send", alice, "and back")[0] == 0
    assert cli(a, "inbox")[1] == f"[{bob}] and back\n"
    assert cli(a, "inbox")[1] == "No new messages.\n"
    history = cli(a, "history", bob)[1]
    assert "Hello from the terminal" in history
    assert "and back" in history

    numbers = [cli(state, "safety-number", peer)[1].splitlines()[1] for state, peer in ((a, bob), (b, alice))]
    assert numbers[0] == numbers[1]
    assert len(numbers[0].replace(" ", "")) == 60

    # Sign-in again on the same state file (same keys), then remove the contact.
    assert cli(a, "login", alice) == (0, f"Signed in as {alice}.\n", "")
    assert cli(a, "contacts", "remove", bob)[0] == 0
    code, _, err = cli(a, "send", bob, "gone?")
    assert code == 1
    assert "No contact with this email. (not_found, HTTP 404)" in err  # asking for bob's devices


def test_errors_are_reported_with_the_api_code_and_a_non_zero_status(cli, tmp_path, monkeypatch):
    alice = new_email("alice")
    state = tmp_path / "alice.sqlite3"
    assert cli(state, "register", alice)[0] == 0
    code, _, err = cli(state, "contacts", "add", "nobody@example.test")
    assert code == 1
    assert "user_not_found" in err
    code, _, err = cli(tmp_path / "other.sqlite3", "register", alice)
    assert code == 1
    assert "HTTP 400" in err
    monkeypatch.setenv("MESSENGER_PASSWORD", "not the right password")
    code, _, err = cli(tmp_path / "third.sqlite3", "login", alice)
    assert code == 1
    assert "HTTP 401" in err
    monkeypatch.setenv("MESSENGER_PASSPHRASE", "wrong passphrase")
    assert cli(state, "contacts") == (1, "", "error: wrong passphrase for this state file\n")


def test_help_everywhere_and_module_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "messenger_client", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0
    for command in ("register", "login", "devices", "contacts", "groups", "send", "inbox", "safety-number", "chat"):
        assert command in result.stdout
    for argv in (
        ["send", "--help"],
        ["contacts", "add", "--help"],
        ["chat", "--help"],
        ["devices", "unlink", "--help"],
        ["groups", "create", "--help"],
        ["history", "--help"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0


def test_chat_mode_prints_incoming_messages_live_and_sends_typed_lines(cli, client_server, tmp_path):
    alice, bob = new_email("alice"), new_email("bob")
    a, b = tmp_path / "alice.sqlite3", tmp_path / "bob.sqlite3"
    assert cli(a, "register", alice)[0] == 0
    assert cli(b, "register", bob)[0] == 0
    assert cli(a, "contacts", "add", bob)[0] == 0
    assert cli(b, "contacts", "accept", alice)[0] == 0
    env = {
        **client_server.env,
        "MESSENGER_SERVER": client_server.url,
        "MESSENGER_PASSPHRASE": PASSPHRASE,
        "PYTHONUNBUFFERED": "1",
    }
    chat = subprocess.Popen(
        [sys.executable, "-m", "messenger_client", "--state", str(a), "chat", bob],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert "chatting with" in chat.stdout.readline()
        assert cli(b, "send", alice, "live message")[0] == 0
        assert chat.stdout.readline() == f"[{bob}] live message\n"
        chat.stdin.write("typed in chat mode\n")
        chat.stdin.flush()
        for _ in range(50):
            out = cli(b, "inbox")[1]
            if "typed in chat mode" in out:
                break
        assert out == f"[{alice}] typed in chat mode\n"
        chat.stdin.close()
        assert chat.wait(timeout=15) == 0
    finally:
        if chat.poll() is None:
            chat.kill()


UNLINKED = (
    "error: this device was unlinked from the account: its keys and sessions were erased from the state file. "
    "Link it again from another device (`link EMAIL`), or run `login --new-device` to start over with a new "
    "identity (your contacts will be warned).\n"
)


def test_devices_are_listed_renamed_and_unlinked_and_an_unlinked_device_starts_over(cli, client_server, tmp_path):
    alice = new_email("alice")
    state = tmp_path / "alice.sqlite3"
    assert cli(state, "register", alice, "--device-name", "Work laptop")[0] == 0
    phone = add_device(client_server, tmp_path, alice, stored_account(state), name="Phone")
    code, out, _ = cli(state, "devices")
    lines = out.splitlines()
    assert code == 0
    assert len(lines) == 2
    assert lines[0].startswith("  1  Work laptop  (this device)  added ")
    assert lines[1].startswith("  2  Phone  added ")
    assert lines[1].endswith("last seen never")
    assert cli(state, "devices", "rename", "2", "Old phone") == (0, "Device 2 is now called Old phone.\n", "")
    assert "  2  Old phone  added" in cli(state, "devices", "list")[1]
    assert cli(state, "devices", "rename", "9", "Tablet") == (
        1,
        "",
        "error: this account has no device 9 (not_found, HTTP 404)\n",
    )
    code, _, err = cli(state, "devices", "rename", "2", "x" * 65)
    assert code == 1
    assert "HTTP 400" in err
    assert "[name: " in err
    assert cli(state, "devices", "unlink", "2")[0] == 0
    assert cli(phone, "login", alice) == (1, "", UNLINKED)  # the phone hears it at its next login
    assert [line.split()[0] for line in cli(state, "devices")[1].splitlines()] == ["1"]

    # Unlinking this device itself: its keys go, and every command says why until it starts over.
    code, out, _ = cli(state, "devices", "unlink", "1")
    assert code == 0
    assert out.startswith("Unlinked device 1, this one: its keys and sessions were erased from this state file.")
    assert stored_account(state) is None
    assert cli(state, "send", "bob@example.test", "hi") == (1, "", UNLINKED)
    assert cli(state, "login", alice) == (1, "", UNLINKED)
    code, out, _ = cli(state, "login", alice, "--new-device", "--device-name", "Fresh start")
    assert code == 0
    assert "Started over as device 3 with a new identity key" in out
    assert cli(state, "devices")[1].startswith("  3  Fresh start  (this device)")


def test_chat_mode_shows_device_changes_and_ends_when_this_device_is_unlinked(cli, client_server, tmp_path):
    alice, bob = new_email("alice"), new_email("bob")
    a, b = tmp_path / "alice.sqlite3", tmp_path / "bob.sqlite3"
    assert cli(a, "register", alice)[0] == 0
    assert cli(b, "register", bob)[0] == 0
    assert cli(a, "contacts", "add", bob)[0] == 0
    assert cli(b, "contacts", "accept", alice)[0] == 0
    add_device(client_server, tmp_path, bob, stored_account(b))
    alice_phone = add_device(client_server, tmp_path, alice, stored_account(a))
    env = {
        **client_server.env,
        "MESSENGER_SERVER": client_server.url,
        "MESSENGER_PASSPHRASE": PASSPHRASE,
        "PYTHONUNBUFFERED": "1",
    }
    chat = subprocess.Popen(
        [sys.executable, "-m", "messenger_client", "--state", str(a), "chat", bob],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert "chatting with" in chat.stdout.readline()
        assert cli(b, "devices", "unlink", "2")[0] == 0
        assert chat.stdout.readline() == f"*** {bob}'s devices changed.\n"
        # Another device of Alice's unlinks this one: the chat ends at once (stdin still open), saying why.
        assert cli(alice_phone, "login", alice)[0] == 0
        assert cli(alice_phone, "devices", "unlink", "1")[0] == 0
        rest = chat.stdout.read()
        assert chat.wait(timeout=15) == 1
        assert rest.endswith(UNLINKED)
        assert stored_account(a) is None
    finally:
        if chat.poll() is None:
            chat.kill()


def test_groups_are_created_listed_talked_in_and_changed(cli, tmp_path):
    alice, bob, carol = new_email("alice"), new_email("bob"), new_email("carol")
    a, b, c = tmp_path / "alice.sqlite3", tmp_path / "bob.sqlite3", tmp_path / "carol.sqlite3"
    for state, email in ((a, alice), (b, bob), (c, carol)):
        assert cli(state, "register", email)[0] == 0
    for state, email in ((b, bob), (c, carol)):
        assert cli(a, "contacts", "add", email)[0] == 0
        assert cli(state, "contacts", "accept", alice)[0] == 0
    assert cli(a, "groups")[1].startswith("No groups yet")

    code, out, err = cli(a, "groups", "create", "Team", bob)
    assert (code, err) == (0, "")
    assert out.startswith("Created the group Team (")
    assert cli(a, "send", "--group", "Team", "hello team")[1].startswith("Sent to the group Team (")
    assert cli(b, "inbox")[1] == f"[Team] [{alice}] hello team\n"
    listing = cli(b, "groups")[1].splitlines()
    assert listing[0].startswith("Team (")
    assert listing[1:] == [f"    {alice} (admin)", f"    {bob}"]

    assert cli(a, "groups", "add", "Team", carol)[0] == 0
    assert cli(a, "groups", "admin", "Team", bob)[0] == 0
    assert cli(b, "groups", "rename", "Team", "Crew")[0] == 0
    assert cli(b, "send", "--group", "Crew", "renamed")[0] == 0
    assert cli(c, "inbox")[1] == f"[Crew] [{bob}] renamed\n"  # the earlier message is not hers to read
    assert cli(a, "inbox")[1] == f"[Crew] [{bob}] renamed\n"  # and the new name, and the receipts
    history = cli(a, "history", "--group", "Crew")[1]
    assert f"** {alice} added {carol}" in history
    assert f'** {bob} named the group "Crew"' in history
    assert "-> sent      hello team  (delivered to 1 of 1, read by 0)" in history
    assert f"<- received  [{bob}] renamed" in history
    code, out, _ = cli(c, "groups", "leave", "Crew")
    assert code == 0
    assert out.startswith("You left Crew (")
    code, _, err = cli(c, "send", "--group", "Crew", "still here?")
    assert code == 1
    assert "no group with the id or name 'Crew'" in err
    code, _, err = cli(a, "send", "--group", "Crew", bob, "both?")
    assert code == 1
    assert "with --group, give no email" in err
