"""Helpers shared by the contacts and keys tests: users made through the registration
service (real keys, no HTTP), contact relations made through the contacts services, and a
recorder of the realtime events those services publish on commit."""

import threading
from collections.abc import Callable

import pytest
from django.conf import settings
from django.db import connection, transaction

from accounts.devices import device_create
from accounts.models import Device, User
from accounts.sessions import tokens_issue
from contacts import services as contacts_services
from keys.models import SignedPreKey
from keys.services import account_register, one_time_prekeys_add
from realtime import bus
from tests.helpers import DEFAULT_PASSWORD, Account, CsrfClient, DeviceKeys, unique_email


class Published(list):
    """(user_ids, event) pairs, appended when the publishing transaction commits."""

    def to(self, user_id: int) -> list[dict]:
        return [event for user_ids, event in self if user_id in user_ids]

    def types(self) -> list[str]:
        return [event["type"] for _, event in self]


@pytest.fixture
def published(monkeypatch) -> Published:
    """Records what contacts and keys publish through realtime.bus.publish_on_commit, with the
    same after-commit timing (run the code under `django_capture_on_commit_callbacks(execute=True)`
    to see the events)."""
    events = Published()

    def record(user_ids, event):
        ids = list(user_ids)
        transaction.on_commit(lambda: events.append((ids, event)))

    monkeypatch.setattr(bus, "publish_on_commit", record)
    return events


def make_user(email: str | None = None, *, one_time_count: int = 10, keys: DeviceKeys | None = None) -> User:
    """A registered user with real device keys; the private halves are on `user.device`."""
    keys = keys or DeviceKeys()
    email = email or unique_email()
    user, _ = account_register(email=email, password=DEFAULT_PASSWORD, **keys.registration_keys(one_time_count))
    user.device = keys
    return user


def add_device(user: User, *, one_time_count: int = 10, name: str | None = None) -> Device:
    """Another device of `user` (made by `make_user`), with its own signed prekey and one-time
    prekeys signed by the account's identity key; its private halves are on `device.keys`.
    What linking (docs/PROTOCOL.md section 18) ends with, for tests that are not about linking."""
    keys = DeviceKeys(identity=user.device.identity)
    device = device_create(user=user, name=name)
    SignedPreKey.objects.create(user=user, device=device, **keys.signed_prekey_payload())
    one_time_prekeys_add(
        user=user, device_id=device.device_id, one_time_prekeys=keys.new_one_time_prekeys(one_time_count)
    )
    device.keys = keys
    return device


def signed_in_account(*, one_time_count: int = 10) -> Account:
    """What `tests.helpers.register_account` returns (a registered account and a client
    carrying its auth cookies), made through the services instead of two HTTP round trips:
    these tests are about the contacts and keys endpoints, and make many accounts."""
    user = make_user(one_time_count=one_time_count)
    client = CsrfClient()
    client.get("/api/v1/auth/csrf")  # the csrftoken cookie, as the register page sets it
    tokens = tokens_issue(user=user, device=user.devices.get(device_id=1))
    client.cookies[settings.AUTH_COOKIE_ACCESS] = tokens.access
    client.cookies[settings.AUTH_COOKIE_REFRESH] = tokens.refresh
    return Account(user.email, DEFAULT_PASSWORD, user.device, client, user.id)


@pytest.fixture
def make_account(db):
    """Overrides the project fixture of the same name for these tests (see signed_in_account)."""
    return signed_in_account


def befriend(a: User, b: User) -> None:
    """a asks b, b accepts."""
    request = contacts_services.contact_request_send(requester=a, email=b.email)
    contacts_services.contact_request_answer(recipient=b, request_id=request.id, action="accept")


def ask(a: User, b: User) -> int:
    """a asks b; returns the pending request's id."""
    return contacts_services.contact_request_send(requester=a, email=b.email).id


def reject(a: User, b: User) -> int:
    """a asks b, b rejects."""
    request_id = ask(a, b)
    contacts_services.contact_request_answer(recipient=b, request_id=request_id, action="reject")
    return request_id


def run_concurrently(calls: list[Callable[[], object]]) -> list[object]:
    """Run each call in a thread of its own (so each has its own database connection), all
    released at once; returns each call's result or the exception it raised, in order."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[object] = [None] * len(calls)

    def run(index: int, call: Callable[[], object]) -> None:
        try:
            barrier.wait()
            outcomes[index] = call()
        except Exception as exc:
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes
