"""Command line of the Python client: ``python -m messenger_client --help``.

Each account and device has its own state file (``--state``, default
``~/.secured-messenger/state.sqlite3`` or ``$MESSENGER_STATE``) sealed with a passphrase read from
``$MESSENGER_PASSPHRASE`` or asked for. Account passwords come from ``$MESSENGER_PASSWORD`` or a prompt.
Linking a new device asks whether both screens show the same verification code (a line of standard
input), unless ``$MESSENGER_LINK_CODE`` holds the code shown on the other device (scripts).
Text that came from the server and is not a message (device names) is printed without control
characters.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import sqlite3
import sys
import threading
from pathlib import Path

from cryptography.exceptions import InvalidTag

from .account import default_device_name
from .client import Client, Event, Message
from .errors import ApiError, ClientError, DeviceRemoved, IdentityChanged, NotSetUp
from .linking import LinkError
from .protocol import ProtocolError, b64encode

DEFAULT_STATE = Path.home() / ".secured-messenger" / "state.sqlite3"


def _secret(env: str, prompt: str, *, confirm: bool = False) -> str:
    value = os.environ.get(env)
    if value:
        return value
    if not sys.stdin.isatty():
        raise ClientError(f"{prompt.rstrip(': ')} needed: set {env} or run in a terminal")
    value = getpass.getpass(prompt)
    if confirm and getpass.getpass("Repeat: ") != value:
        raise ClientError("the two entries differ")
    return value


def _open(args) -> Client:
    passphrase = _secret("MESSENGER_PASSPHRASE", "State file passphrase: ", confirm=not Path(args.state).exists())
    return Client.open(args.server, args.state, passphrase, on_event=None)


def _out(text: str = "") -> None:
    print(text, flush=True)


def _printable(text: object) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in str(text))


# -- commands ----------------------------------------------------------------------------------------------


async def cmd_register(args) -> None:
    async with _open(args) as client:
        password = _secret("MESSENGER_PASSWORD", "Account password: ", confirm=True)
        await client.register(args.email, password, device_name=args.device_name)
        _out(f"Registered and signed in as {args.email} on {client.server}.")


async def cmd_login(args) -> None:
    async with _open(args) as client:
        password = _secret("MESSENGER_PASSWORD", "Account password: ")
        started_over = await client.login(
            args.email, password, new_device=args.new_device, device_name=args.device_name
        )
        _out(f"Signed in as {args.email}.")
        if started_over:
            _out(
                f"Started over as device {client.device_id} with a new identity key: the account's other "
                "devices were removed and your contacts will see a new safety number."
            )


async def cmd_logout(args) -> None:
    async with _open(args) as client:
        await client.logout()
        _out("Signed out.")


async def cmd_contacts(args) -> None:
    async with _open(args) as client:
        contacts = await client.contacts()
        requests = await client.contact_requests()
        if not contacts:
            _out("No contacts yet.")
        for contact in contacts:
            _out(f"{contact['email']}  (since {contact.get('since', '?')})")
        for request in requests.get("incoming", []):
            _out(f"request from {request['email']}  (accept with: contacts accept {request['email']})")
        for request in requests.get("outgoing", []):
            _out(f"request to {request['email']}  (waiting)")


async def cmd_add(args) -> None:
    async with _open(args) as client:
        await client.add_contact(args.email)
        _out(f"Contact request sent to {args.email}.")


async def cmd_accept(args) -> None:
    async with _open(args) as client:
        await client.answer_request(args.email, accept=True)
        _out(f"{args.email} is now a contact.")


async def cmd_reject(args) -> None:
    async with _open(args) as client:
        await client.answer_request(args.email, accept=False)
        _out(f"Request from {args.email} declined.")


async def cmd_remove(args) -> None:
    async with _open(args) as client:
        await client.remove_contact(args.email)
        _out(f"{args.email} removed.")


def _day(timestamp: object) -> str:
    """``2025-03-01 14:05`` from the server's ISO 8601 time (UTC), "never" for none."""
    return _printable(timestamp)[:16].replace("T", " ") if timestamp else "never"


async def cmd_devices(args) -> None:
    async with _open(args) as client:
        devices = await client.devices()
        for device in devices:
            this = "  (this device)" if device["current"] else ""
            _out(
                f"{device['id']:>3}  {_printable(device['name'])}{this}  added {_day(device['created_at'])}, "
                f"last seen {_day(device['last_seen_at'])}"
            )
        if not devices:
            _out("No devices.")


async def cmd_devices_rename(args) -> None:
    async with _open(args) as client:
        renamed = await client.rename_device(args.id, args.name)
        _out(f"Device {args.id} is now called {_printable(renamed.get('name', args.name))}.")


async def cmd_devices_unlink(args) -> None:
    async with _open(args) as client:
        own = client.device_id
        try:
            await client.unlink_device(args.id)
        except DeviceRemoved:
            if args.id != own:
                raise
            _out(
                f"Unlinked device {args.id}, this one: its keys and sessions were erased from this state file. "
                "Run `login --new-device` to start over with a new identity (your contacts will be warned)."
            )
            return
        _out(f"Device {args.id} unlinked: it is signed out and its keys are deleted from the server.")


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


async def _confirm_code(code: str) -> bool:
    """Whether the user says the other device shows ``code`` (docs/PROTOCOL.md section 18): the code in
    ``$MESSENGER_LINK_CODE``, else a ``y`` on standard input. Anything else, or no answer, declines."""
    expected = os.environ.get("MESSENGER_LINK_CODE")
    if expected:
        return _digits(expected) == _digits(code)
    print("Does the other device show the same code? [y/N] ", end="", flush=True)
    answer = await _stdin_lines(asyncio.get_running_loop()).get()
    return answer is not None and answer.strip().lower() in ("y", "yes")


async def cmd_link(args) -> None:
    if args.what == "accept":
        if args.code is None:
            raise ClientError("link accept needs the link code shown on the new device")
        await _link_accept(args)
        return
    if args.code is not None:
        raise ClientError("usage: link EMAIL (on the new device) or link accept CODE (on a linked device)")
    email = args.what
    async with _open(args) as client:
        password = _secret("MESSENGER_PASSWORD", "Account password: ")
        try:
            await client.login(email, password)
        except NotSetUp:  # no keys here (or unlinked): a pending sign-in, what linking starts from
            pass
        else:
            raise LinkError(f"this state file is already device {client.device_id} of {email}: nothing to link")
        link = await client.open_link()
        completed = False
        try:
            _out("On a device already signed in to this account, link a new device with this code:")
            _out(link.code)
            opening = await client.wait_for_link_offer(link)
            _out(f"Verification code: {opening.verification_code}")
            if not await _confirm_code(opening.verification_code):
                opening.discard()
                raise LinkError("the verification codes were not confirmed: nothing was linked")
            number = await client.complete_link(link, opening, device_name=args.device_name)
            completed = True
        finally:
            if not completed:  # also on Ctrl-C (the task is cancelled): the other device stops waiting
                with contextlib.suppress(ClientError):
                    await client.cancel_link(link.link_id)
        _out(f"Linked: this state file is device {number} of {email}.")


async def _link_accept(args) -> None:
    async with _open(args) as client:
        before = {device["id"] for device in await client.devices()}
        offer = await client.accept_link(args.code)
        link_id = b64encode(offer.link_id)
        _out(f"Verification code: {offer.verification_code}")
        _out("Confirm on the new device that it shows the same code (Ctrl-C cancels the link).")
        try:
            await client.wait_for_link_closed(link_id)
        except asyncio.CancelledError:
            with contextlib.suppress(ClientError):
                await client.cancel_link(link_id)
            raise
        added = [d for d in await client.devices() if d["id"] not in before]
        if added:
            for device in added:
                _out(f"Linked device {device['id']} ({_printable(device['name'])}).")
        else:
            _out("The link closed without a new device (declined, cancelled or expired).")


def _target(args) -> tuple[str | None, str | None]:
    """(email, text) of ``send``/``history``/``chat``: with ``--group`` the first positional is the text."""
    if args.group is None:
        if args.email is None:
            raise ClientError("give the contact's email, or --group GROUP")
        return args.email, getattr(args, "text", None)
    if getattr(args, "text", None) is not None or (args.email is not None and not hasattr(args, "text")):
        raise ClientError("with --group, give no email")
    return None, args.email


async def cmd_send(args) -> None:
    email, text = _target(args)
    async with _open(args) as client:
        text = text if text is not None else sys.stdin.read().removesuffix("\n")
        if email is None:
            group = await client.find_group(args.group)
            sent = await client.send_group(group.id, text)
            _out(f"Sent to the group {_group_label(group)} (id {sent.id}).")
            return
        sent = await client.send(email, text)
        _out(f"Sent to {email} (id {sent.id}).")


def _group_label(group) -> str:
    return f"{_printable(group.name)} ({group.id})" if group.name else group.id


def _show(message: Message, client: Client | None = None) -> str:
    where = ""
    if message.group is not None:
        name = client.group_name(message.group) if client is not None else None
        where = f"[{_printable(name) if name else message.group}] "
    if message.text is None:
        return f"{where}[{message.sender}] (could not decrypt: {message.failure})"
    note = "  [safety number changed]" if message.identity_changed else ""
    return f"{where}[{message.sender}] {message.text}{note}"


async def cmd_groups(args) -> None:
    async with _open(args) as client:
        groups = await client.groups()
        if not groups:
            _out("No groups yet (create one with: groups create NAME EMAIL...).")
        for group in groups:
            _out(f"{_group_label(group)}  epoch {group.epoch}, you: {group.role}")
            for member in group.members:
                admin = " (admin)" if member.role == "admin" else ""
                _out(f"    {member.email}{admin}")


async def cmd_groups_create(args) -> None:
    async with _open(args) as client:
        group = await client.create_group(args.name, args.emails)
        _out(f"Created the group {_group_label(group)} with {', '.join(args.emails)}.")


async def cmd_groups_member(args) -> None:
    """add / remove / admin: one member of one group."""
    async with _open(args) as client:
        group = await client.find_group(args.group)
        if args.groups_command == "add":
            await client.add_member(group.id, args.email)
            _out(f"Added {args.email} to {_group_label(group)}.")
        elif args.groups_command == "remove":
            await client.remove_member(group.id, args.email)
            _out(f"Removed {args.email} from {_group_label(group)}.")
        else:
            await client.make_admin(group.id, args.email)
            _out(f"{args.email} is now an admin of {_group_label(group)}.")


async def cmd_groups_leave(args) -> None:
    async with _open(args) as client:
        group = await client.find_group(args.group)
        await client.leave_group(group.id)
        _out(f"You left {_group_label(group)}.")


async def cmd_groups_rename(args) -> None:
    async with _open(args) as client:
        group = await client.find_group(args.group)
        await client.rename_group(group.id, args.name)
        _out(f"Renamed {group.id} to {_printable(args.name)}.")


async def cmd_inbox(args) -> None:
    async with _open(args) as client:
        received = await client.fetch()
        await client.sync_receipts()
        await client.sync_group_receipts()
        for message in received:
            _out(_show(message, client))
            if args.read:
                await client.mark_read(message)
        if not received:
            _out("No new messages.")


async def cmd_history(args) -> None:
    email, _ = _target(args)
    async with _open(args) as client:
        group = (await client.find_group(args.group)).id if email is None else None
        for item in client.history(email, args.limit, group=group):
            if item.notice:
                if item.text is not None:
                    _out(f"** {_printable(item.text)}")
                continue
            arrow = "->" if item.direction == "out" else "<-"
            text = item.text if item.text is not None else f"(could not decrypt: {item.failure})"
            sender = f"[{item.peer}] " if group is not None and item.direction == "in" else ""
            counts = ""
            if group is not None and item.direction == "out" and item.sent_to is not None:
                counts = f"  (delivered to {item.delivered_to} of {item.sent_to}, read by {item.read_by})"
            _out(f"{arrow} {item.status:9} {sender}{text}{counts}")


async def cmd_safety_number(args) -> None:
    async with _open(args) as client:
        number = await client.safety_number(args.email)
        _out(f"Safety number with {args.email}:")
        _out(number["safety_number"])
        if number["changed"]:
            _out("")
            _out(f"WARNING: {args.email} has a NEW identity key. New safety number:")
            _out(number["new_safety_number"])
            _out(f"Compare it with them, then run: trust {args.email}")


async def cmd_trust(args) -> None:
    async with _open(args) as client:
        if await client.accept_identity(args.email):
            _out(f"Accepted the new identity key of {args.email}.")
        else:
            _out(f"No pending identity change for {args.email}.")


def _stdin_lines(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str | None]:
    """Lines of standard input (None at its end), read by a daemon thread: the chat can then end as
    soon as the connection stops for good (signed out, this device unlinked), where a thread of the
    loop's executor would hold the process until the next line."""
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        try:
            for line in iter(sys.stdin.readline, ""):
                loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(lines.put_nowait, None)
        except RuntimeError:  # the loop closed: the chat is over
            pass

    threading.Thread(target=read, name="stdin", daemon=True).start()
    return lines


async def cmd_chat(args) -> None:
    peer, _ = _target(args)
    async with _open(args) as client:
        group = await client.find_group(args.group) if peer is None else None

        def on_event(event: Event) -> None:
            if event.type == "identity_changed":
                _out(f"*** The safety number with {event.data.get('email')} changed (see: safety-number).")
            elif event.type == "devices_changed":
                who = str(event.data.get("email"))
                own = client.email is not None and who.lower() == client.email.lower()
                _out("*** Your account's devices changed." if own else f"*** {_printable(who)}'s devices changed.")
            elif event.type == "sent_elsewhere" and (
                event.data.get("group") == group.id if group else str(event.data.get("to")).lower() == peer.lower()
            ):
                text = event.data.get("text")
                _out(f"[me, on another device] {text if text is not None else '(undecryptable)'}")
            elif event.type == "group_renamed" and group and event.data.get("group") == group.id:
                _out(f"*** {event.data.get('by')} named the group {_printable(event.data.get('name'))}.")
            elif event.type == "group_changed" and group and event.data.get("group") == group.id:
                _out(f"*** The group changed ({_printable(event.data.get('change'))}).")
            elif event.type == "contact_request":
                _out(f"*** Contact request from {event.data.get('from')}.")
            elif event.type == "read" and args.receipts:
                _out(f"*** read: {event.data.get('ids')}")

        client.on_event = on_event
        for item in client.history(peer, 10, group=group.id if group else None):
            if item.notice:
                if item.text is not None:
                    _out(f"** {_printable(item.text)}")
                continue
            who = "me" if item.direction == "out" else item.peer
            _out(f"[{who}] {item.text if item.text is not None else '(undecryptable)'}")
        await client.connect()
        other = f"the group {_group_label(group)}" if group else peer
        _out(f"--- chatting with {other}; type a line and Enter to send, Ctrl-D to quit ---")

        async def show_incoming() -> None:
            async for message in client.messages():
                _out(_show(message, client))
                here = (
                    message.group == group.id
                    if group
                    else message.group is None and message.sender.lower() == peer.lower()
                )
                if here:
                    await client.mark_read(message)

        reader = asyncio.create_task(show_incoming())
        lines = _stdin_lines(asyncio.get_running_loop())
        try:
            while True:
                getter = asyncio.ensure_future(lines.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:  # the connection stopped for good: the reader says why
                    getter.cancel()
                    break
                line = getter.result()
                if line is None:
                    break
                line = line.rstrip("\n")
                if not line.strip():
                    continue
                try:
                    if group:
                        await client.send_group(group.id, line)
                    else:
                        await client.send(peer, line)
                except (ApiError, IdentityChanged) as error:
                    _out(f"!!! not sent: {error}")
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            if reader.done() and not reader.cancelled() and reader.exception():
                raise reader.exception()


# -- parser ------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m messenger_client",
        description="Secured Messenger from the terminal: end-to-end encrypted, interoperable with the browser.",
        epilog="Environment: MESSENGER_SERVER, MESSENGER_STATE, MESSENGER_PASSPHRASE (state file), "
        "MESSENGER_PASSWORD (account). Without them you are prompted.",
    )
    parser.add_argument(
        "--server",
        default=os.environ.get("MESSENGER_SERVER"),
        help="server URL, e.g. https://chat.example.org (default: the one stored in the state file)",
    )
    parser.add_argument(
        "--state",
        default=os.environ.get("MESSENGER_STATE", str(DEFAULT_STATE)),
        help=f"state file of this account and device (default: {DEFAULT_STATE})",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler, help_text: str, *arguments: tuple[str, str]):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        for argument, argument_help in arguments:
            sub.add_argument(argument, help=argument_help)
        sub.set_defaults(handler=handler)
        return sub

    device_name_help = f'how the account\'s device list names this state file (default: "{default_device_name()}")'
    register = command(
        "register",
        cmd_register,
        "create an account (new keys in the state file, its device 1) and sign in",
        ("email", "your email address"),
    )
    register.add_argument("--device-name", metavar="NAME", help=device_name_help)
    login = command("login", cmd_login, "sign in as this state file's device", ("email", "your email address"))
    login.add_argument(
        "--new-device",
        action="store_true",
        help="if this state file is no device of the account (no keys, or unlinked): start over here with a "
        "new identity key as a new device (the account's other devices are removed; contacts see a new "
        "safety number)",
    )
    login.add_argument("--device-name", metavar="NAME", help=device_name_help + "; with --new-device")
    command("logout", cmd_logout, "sign out this device (the server forgets its session)")
    link = commands.add_parser(
        "link",
        help="link this state file as a new device of an account (link EMAIL), or link one (link accept CODE)",
        description="On the NEW device: `link EMAIL` signs in, shows a link code and waits for a device of the "
        "account to answer it, then asks you to compare the verification codes of both screens. On a device "
        "already linked: `link accept CODE` (the code or its https://host/#link=CODE form) answers it and shows "
        "its verification code. The identity key goes from one to the other end-to-end encrypted.",
    )
    link.add_argument("what", metavar="EMAIL|accept", help="your email (new device) or `accept` (linked device)")
    link.add_argument("code", nargs="?", metavar="CODE", help="with accept: the link code shown on the new device")
    link.add_argument("--device-name", metavar="NAME", help=device_name_help + "; on the new device")
    link.set_defaults(handler=cmd_link)

    devices = commands.add_parser(
        "devices",
        help="list, rename or unlink the account's devices",
        description="The account's devices (without a subcommand: list).",
    )
    devices.set_defaults(handler=cmd_devices)
    device_commands = devices.add_subparsers(dest="devices_command", metavar="ACTION")
    device_commands.add_parser("list", help="list the devices", description="list the devices").set_defaults(
        handler=cmd_devices
    )
    rename = device_commands.add_parser("rename", help="rename a device", description="rename a device")
    rename.add_argument("id", type=int, help="the device's number (see: devices list)")
    rename.add_argument("name", help="1 to 64 characters")
    rename.set_defaults(handler=cmd_devices_rename)
    unlink = device_commands.add_parser(
        "unlink",
        help="remove a device from the account (this one too)",
        description="Remove a device from the account: it is signed out for good and its keys are deleted "
        "from the server; contacts are told quietly. Unlinking this device erases its keys here too.",
    )
    unlink.add_argument("id", type=int, help="the device's number (see: devices list)")
    unlink.set_defaults(handler=cmd_devices_unlink)

    contacts = commands.add_parser(
        "contacts",
        help="list, add, accept, reject or remove contacts",
        description="Contacts and contact requests (without a subcommand: list).",
    )
    contacts.set_defaults(handler=cmd_contacts)
    contact_commands = contacts.add_subparsers(dest="contacts_command", metavar="ACTION")
    for name, handler, help_text in (
        ("list", cmd_contacts, "list contacts and pending requests"),
        ("add", cmd_add, "send a contact request"),
        ("accept", cmd_accept, "accept a contact request"),
        ("reject", cmd_reject, "decline a contact request"),
        ("remove", cmd_remove, "remove a contact (for both sides)"),
    ):
        sub = contact_commands.add_parser(name, help=help_text, description=help_text)
        if name != "list":
            sub.add_argument("email", help="the other person's email")
        sub.set_defaults(handler=handler)

    group_help = "a group (its id, or a name only one of your groups has) instead of a contact"
    send = commands.add_parser(
        "send", help="send one message", description="send one message: send EMAIL [TEXT] or send --group GROUP [TEXT]"
    )
    send.add_argument("email", nargs="?", help="the contact (none with --group)")
    send.add_argument("text", nargs="?", help="the message (default: read from standard input)")
    send.add_argument("--group", metavar="GROUP", help=group_help)
    send.set_defaults(handler=cmd_send)
    inbox = command("inbox", cmd_inbox, "download, decrypt and show new messages (without a live connection)")
    inbox.add_argument("--read", action="store_true", help="also send read receipts")
    history = commands.add_parser(
        "history",
        help="show stored messages with a contact or in a group",
        description="history EMAIL or history --group GROUP",
    )
    history.add_argument("email", nargs="?", help="the contact (none with --group)")
    history.add_argument("--group", metavar="GROUP", help=group_help)
    history.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    history.set_defaults(handler=cmd_history)
    command(
        "safety-number",
        cmd_safety_number,
        "show the safety number with a contact (compare it with theirs)",
        ("email", "the contact"),
    )
    command(
        "trust",
        cmd_trust,
        "accept a contact's new identity key after comparing the safety number",
        ("email", "the contact"),
    )
    chat = commands.add_parser(
        "chat",
        help="interactive conversation: incoming messages are printed live",
        description="chat EMAIL or chat --group GROUP: incoming messages are printed live",
    )
    chat.add_argument("email", nargs="?", help="the contact (none with --group)")
    chat.add_argument("--group", metavar="GROUP", help=group_help)
    chat.add_argument("--receipts", action="store_true", help="print read receipts")
    chat.set_defaults(handler=cmd_chat)

    groups = commands.add_parser(
        "groups",
        help="list, create and change groups",
        description="Groups (without a subcommand: list them with their members). GROUP is a group's id or a "
        "name only one of your groups has. Names travel end-to-end encrypted between the members.",
    )
    groups.set_defaults(handler=cmd_groups)
    group_commands = groups.add_subparsers(dest="groups_command", metavar="ACTION")
    group_commands.add_parser("list", help="list the groups", description="list the groups").set_defaults(
        handler=cmd_groups
    )
    create = group_commands.add_parser(
        "create", help="create a group with contacts", description="create a group with contacts"
    )
    create.add_argument("name", help="1 to 64 characters")
    create.add_argument("emails", nargs="+", metavar="EMAIL", help="contacts to add")
    create.set_defaults(handler=cmd_groups_create)
    for name, help_text in (
        ("add", "add a contact to a group"),
        ("remove", "remove a member (admins only)"),
        ("admin", "make a member admin"),
    ):
        sub = group_commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("group", metavar="GROUP")
        sub.add_argument("email", help="the member's email")
        sub.set_defaults(handler=cmd_groups_member)
    leave = group_commands.add_parser("leave", help="leave a group", description="leave a group")
    leave.add_argument("group", metavar="GROUP")
    leave.set_defaults(handler=cmd_groups_leave)
    group_rename = group_commands.add_parser(
        "rename", help="rename a group (sent to its members)", description="rename a group"
    )
    group_rename.add_argument("group", metavar="GROUP")
    group_rename.add_argument("name", help="1 to 64 characters")
    group_rename.set_defaults(handler=cmd_groups_rename)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        asyncio.run(args.handler(args))
    except KeyboardInterrupt:
        return 130
    except (ClientError, ProtocolError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except InvalidTag:
        print(f"error: the state file {args.state} is damaged (a sealed value does not verify)", file=sys.stderr)
        return 1
    except (OSError, sqlite3.Error) as error:
        print(f"error: state file {args.state}: {error}", file=sys.stderr)
        return 1
    return 0
