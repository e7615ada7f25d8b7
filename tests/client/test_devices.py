"""Devices in the Python client (docs/PROTOCOL.md sections 14, 15 and 19): the state file's device
number named at every login, the device list, renaming and unlinking, and a device that finds
itself unlinked (at a REST call, on its socket, at login) erasing its keys and sessions."""

import pytest

from messenger_client import ApiError, Client, ClientError, DeviceRemoved, NotSetUp
from messenger_client.account import default_device_name
from tests.client.conftest import PASSPHRASE, PASSWORD
from tests.client.helpers import add_device, befriend, next_event, next_message, registered


def record_logins(client: Client, monkeypatch) -> list:
    """The ``device_id`` of every login the client sends from now on."""
    named = []
    call = client.http.call

    async def recording(method, endpoint, body=None, **kwargs):
        if endpoint == "auth/login":
            named.append(body["device_id"])
        return await call(method, endpoint, body, **kwargs)

    monkeypatch.setattr(client.http, "call", recording)
    return named


def record_requests(client: Client, monkeypatch) -> list:
    """(method, path) of every HTTP request the client makes from now on."""
    sent = []
    request = client.http._request

    async def recording(method, path, body=None):
        sent.append((method, path))
        return await request(method, path, body)

    monkeypatch.setattr(client.http, "_request", recording)
    return sent


def assert_erased(client: Client) -> None:
    assert client.store.get_json("account") is None
    assert client.store.peers_with_sessions() == []
    assert client.store.get_meta("device_id") is None
    assert client.device_id is None


async def unlink_from_another_device(server, tmp_path, client: Client, device_id: int = 1) -> None:
    """Another device of the client's account signs in and unlinks ``device_id`` through the API."""
    phone_state = add_device(server, tmp_path, client.email, client.store.get_json("account"))
    async with Client.open(None, str(phone_state), PASSPHRASE) as phone:
        await phone.login(client.email, PASSWORD)
        assert phone.device_id == 2
        await phone.unlink_device(device_id)


async def test_the_device_number_is_stored_and_named_at_every_login(client_server, tmp_path, monkeypatch):
    alice = await registered(client_server.url, tmp_path, "alice")
    async with alice:
        assert alice.device_id == 1
        assert alice.store.get_meta("device_id") == "1"
        # With two devices, a login that named none would be a pending session: naming 1 binds this one.
        add_device(client_server, tmp_path, alice.email, alice.store.get_json("account"))
        logins = record_logins(alice, monkeypatch)
        await alice.logout()
        assert await alice.login(alice.email, PASSWORD) is False
        assert logins == [1]
        assert (await alice.me())["device"]["id"] == 1
        assert [m.text for m in await alice.fetch()] == []  # a device-bound session may do everything
    # A state file without keys names no device (null): a pending session, and a clear hint.
    async with Client.open(client_server.url, str(tmp_path / "empty.sqlite3"), PASSPHRASE) as empty:
        logins = record_logins(empty, monkeypatch)
        with pytest.raises(NotSetUp, match="--new-device"):
            await empty.login(alice.email, PASSWORD)
        assert logins == [None]
        assert (await empty.me())["device"] is None
        assert len(await empty.devices()) == 2  # a pending session may look at the account's devices


async def test_a_state_file_from_before_devices_is_device_1(client_server, tmp_path, monkeypatch):
    alice = await registered(client_server.url, tmp_path, "alice")
    path, email = alice.store.path, alice.email
    async with alice:
        add_device(client_server, tmp_path, email, alice.store.get_json("account"))
        with alice.store.transaction():
            alice.store.set_meta("device_id", None)  # keys but no number, as a version-1 client wrote it
    async with Client.open(None, str(path), PASSPHRASE) as alice:
        assert alice.device_id == 1
        logins = record_logins(alice, monkeypatch)
        await alice.login(email, PASSWORD)
        assert logins == [1]
        assert (await alice.me())["device"]["id"] == 1
        assert alice.store.get_meta("device_id") == "1"


async def test_devices_are_listed_renamed_and_unlinked_while_this_one_keeps_working(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(client_server.url, tmp_path, "bob")
    async with alice, bob:
        await befriend(alice, bob)
        await alice.send(bob.email, "before")
        assert (await next_message(bob)).text == "before"
        number = (await bob.safety_number(alice.email))["safety_number"]
        add_device(client_server, tmp_path, alice.email, alice.store.get_json("account"), name="Phone")
        await alice.connect()

        devices = await alice.devices()
        assert [(d["id"], d["name"], d["current"]) for d in devices] == [
            (1, default_device_name(), True),
            (2, "Phone", False),
        ]
        assert set(devices[0]) == {"id", "name", "created_at", "last_seen_at", "current"}
        assert await alice.rename_device(2, "Old phone") == {"id": 2, "name": "Old phone"}
        assert [d["name"] for d in await alice.devices()] == [default_device_name(), "Old phone"]

        # Refusals are clear: the server's reason, a number that is no device of the account, a bad argument.
        with pytest.raises(ApiError) as refused:
            await alice.rename_device(2, "x" * 65)
        assert (refused.value.status, list(refused.value.errors)) == (400, ["name"])
        with pytest.raises(ApiError, match="this account has no device 7") as refused:
            await alice.rename_device(7, "Tablet")
        assert refused.value.status == 404
        with pytest.raises(ClientError, match="whole number"):
            await alice.unlink_device(0)

        await alice.unlink_device(2)
        assert [d["id"] for d in await alice.devices()] == [1]
        with pytest.raises(ApiError) as refused:
            await alice.unlink_device(2)  # already removed: one answer for every number not in use
        assert refused.value.status == 404
        # The account's own sockets and its contacts hear of it quietly: the safety number stays.
        assert (await next_event(alice, "devices_changed")).data == {"email": alice.email}
        assert (await next_event(bob, "devices_changed")).data == {"email": alice.email}
        assert await bob.safety_number(alice.email) == {
            "safety_number": number,
            "changed": False,
            "new_safety_number": None,
        }
        # This device goes on as before.
        assert alice.connected
        await alice.send(bob.email, "still here")
        assert (await next_message(bob)).text == "still here"
        await bob.send(alice.email, "good")
        assert (await next_message(alice)).text == "good"


async def test_a_device_unlinked_elsewhere_erases_its_keys_at_its_next_rest_call(client_server, tmp_path, monkeypatch):
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(client_server.url, tmp_path, "bob")
    async with alice, bob:
        await befriend(alice, bob)
        await alice.send(bob.email, "kept in the history")
        await bob.fetch()
        assert alice.store.peers_with_sessions() == [bob.email]
        await unlink_from_another_device(client_server, tmp_path, alice)

        requests = record_requests(alice, monkeypatch)
        with pytest.raises(DeviceRemoved, match="login --new-device"):
            await alice.contacts()
        assert requests == [("GET", "/api/v1/contacts/")]  # no refresh, no retry
        assert_erased(alice)
        assert alice.store.get_json("cookies") == {}
        assert [m.text for m in alice.history(bob.email)] == ["kept in the history"]
        # Whatever comes next is refused here, without asking the server again.
        with pytest.raises(DeviceRemoved):
            await alice.send(bob.email, "anyone?")
        assert requests == [("GET", "/api/v1/contacts/")]
        with pytest.raises(DeviceRemoved):
            await alice.login(alice.email, PASSWORD)

        # Starting over makes a new device (numbers are never reused) with a new identity key.
        assert await alice.login(alice.email, PASSWORD, new_device=True) is True
        assert alice.device_id == 3
        assert [(d["id"], d["current"]) for d in await alice.devices()] == [(3, True)]
        assert await bob.check_identity(alice.email)


async def test_a_connected_device_learns_from_its_socket_that_it_was_unlinked(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(client_server.url, tmp_path, "bob")
    async with alice, bob:
        await befriend(alice, bob)
        await bob.send(alice.email, "hello")
        assert (await next_message(alice)).text == "hello"
        await unlink_from_another_device(client_server, tmp_path, alice)
        with pytest.raises(DeviceRemoved):
            await next_message(alice)  # the stream ends with why the socket stopped
        assert_erased(alice)


async def test_a_device_unlinked_while_closed_learns_it_at_login(client_server, tmp_path, monkeypatch):
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(client_server.url, tmp_path, "bob")
    path, email = alice.store.path, alice.email
    async with alice, bob:
        await befriend(alice, bob)
        await alice.send(bob.email, "hi")
        await alice.logout()
        account = alice.store.get_json("account")
    phone_state = add_device(client_server, tmp_path, email, account)
    async with Client.open(None, str(phone_state), PASSPHRASE) as phone:
        await phone.login(email, PASSWORD)
        await phone.unlink_device(1)
    async with Client.open(None, str(path), PASSPHRASE) as alice:
        logins = record_logins(alice, monkeypatch)
        with pytest.raises(DeviceRemoved):
            await alice.login(email, PASSWORD)
        assert logins == [1]
        assert_erased(alice)
        assert [m.status for m in alice.history(bob.email)] == ["sent"]


async def test_unlinking_this_device_itself_erases_its_keys(client_server, tmp_path):
    alice = await registered(client_server.url, tmp_path, "alice")
    async with alice:
        await alice.connect()
        with pytest.raises(DeviceRemoved):
            await alice.unlink_device(1)
        assert_erased(alice)
        with pytest.raises(DeviceRemoved):
            await alice.connect()


async def test_prekeys_low_is_acted_on_only_for_this_device(client_server, tmp_path, monkeypatch):
    alice = await registered(client_server.url, tmp_path, "alice")
    bob = await registered(client_server.url, tmp_path, "bob")
    async with alice, bob:
        await befriend(alice, bob)
        add_device(client_server, tmp_path, alice.email, alice.store.get_json("account"), one_time_prekeys=5)
        refills = []
        monkeypatch.setattr(alice._keys, "maintain_in_background", lambda: refills.append(True))
        await alice.connect()
        # Bob claims one of device 2's few one-time prekeys: every socket of Alice's account hears it.
        answer = await bob.http.call("POST", "keys/bundles", {"email": alice.email, "device_ids": [2]})
        assert [d["device_id"] for d in answer["devices"]] == [2]
        low = await next_event(alice, "prekeys_low")  # handled (or not) before it became an event
        assert low.data["device_id"] == 2
        assert refills == []
        # About this device, or naming none (a server from before devices): refilled.
        await alice._socket.dispatch({"type": "prekeys_low", "device_id": 1, "remaining": 3})
        await alice._socket.dispatch({"type": "prekeys_low", "remaining": 3})
        assert refills == [True, True]


async def test_a_close_reason_device_removed_is_believed_without_asking(client_server, tmp_path, monkeypatch):
    # chat/consumers.py closes with that reason; daphne drops it (transport.py asks auth/me instead), an ASGI
    # server that passes it on saves the question.
    alice = await registered(client_server.url, tmp_path, "alice")
    async with alice:
        requests = record_requests(alice, monkeypatch)
        assert isinstance(await alice._socket._revoked("device_removed"), DeviceRemoved)
        assert requests == []
        assert_erased(alice)


def test_the_default_device_name_is_printable_and_fits_the_server_limit(monkeypatch):
    monkeypatch.setattr("socket.gethostname", lambda: "build-host")
    assert default_device_name() == "Terminal on build-host"
    monkeypatch.setattr("socket.gethostname", lambda: "h\x1b[31m" + "x" * 100)
    name = default_device_name()
    assert len(name) == 64
    assert name.startswith("Terminal on h[31mxxx")
    assert name.isprintable()
    monkeypatch.setattr("socket.gethostname", lambda: "")
    assert default_device_name() == "Terminal"
