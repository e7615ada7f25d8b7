"""Helpers shared by the test suites: real key material and a CSRF-aware API client.

Keys are generated with `cryptography` exactly as a client would make them (Ed25519
identity key, X25519 prekeys, the signed prekey signed over its raw public bytes); the
private halves stay in the returned object, as they would stay on a device.
"""

import base64
import itertools
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from rest_framework.test import APIClient

from accounts.hashers import PepperedPBKDF2PasswordHasher


class FastPepperedPBKDF2PasswordHasher(PepperedPBKDF2PasswordHasher):
    """The production hasher with few iterations, so hundreds of test logins stay fast.
    accounts/tests/test_hashers.py checks the real iteration count separately."""

    iterations = 1000


DEFAULT_PASSWORD = "correct horse battery staple"
_emails = itertools.count(1)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def raw_public(private_key) -> bytes:
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass
class DeviceKeys:
    identity: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    signed_prekey: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate)
    signed_prekey_id: int = 1
    next_one_time_id: int = 1
    one_time: dict[int, X25519PrivateKey] = field(default_factory=dict)

    @property
    def identity_key(self) -> str:
        return b64(raw_public(self.identity))

    def signed_prekey_payload(self, key_id: int | None = None, private=None) -> dict:
        private = private or self.signed_prekey
        public = raw_public(private)
        return {
            "key_id": self.signed_prekey_id if key_id is None else key_id,
            "public_key": b64(public),
            "signature": b64(self.identity.sign(public)),
        }

    def new_one_time_prekeys(self, count: int) -> list[dict]:
        batch = []
        for _ in range(count):
            key_id, self.next_one_time_id = self.next_one_time_id, self.next_one_time_id + 1
            private = X25519PrivateKey.generate()
            self.one_time[key_id] = private
            batch.append({"key_id": key_id, "public_key": b64(raw_public(private))})
        return batch

    def registration_keys(self, one_time_count: int = 10) -> dict:
        return {
            "identity_key": self.identity_key,
            "signed_prekey": self.signed_prekey_payload(),
            "one_time_prekeys": self.new_one_time_prekeys(one_time_count),
        }


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}{next(_emails)}@example.test"


def registration_payload(
    email: str | None = None, password: str = DEFAULT_PASSWORD, keys: DeviceKeys | None = None, one_time_count: int = 10
) -> dict:
    keys = keys or DeviceKeys()
    return {"email": email or unique_email(), "password": password, **keys.registration_keys(one_time_count)}


class CsrfClient(APIClient):
    """An API client that behaves like the browser client: CSRF checks enforced by the
    server, the `csrftoken` cookie fetched once and echoed in X-CSRFToken on unsafe calls."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, enforce_csrf_checks=True, **kwargs)

    def _csrf_header(self) -> dict:
        if "csrftoken" not in self.cookies:
            self.get("/api/v1/auth/csrf")
        return {"HTTP_X_CSRFTOKEN": self.cookies["csrftoken"].value}

    def generic(self, method, path, data="", content_type="application/octet-stream", secure=False, **extra):
        if method.upper() not in ("GET", "HEAD", "OPTIONS", "TRACE"):
            extra = {**self._csrf_header(), **extra}
        return super().generic(method, path, data, content_type, secure=secure, **extra)

    def post_json(self, path: str, data=None, **extra):
        return self.post(path, data if data is not None else {}, format="json", **extra)

    def put_json(self, path: str, data=None, **extra):
        return self.put(path, data if data is not None else {}, format="json", **extra)


@dataclass
class Account:
    email: str
    password: str
    keys: DeviceKeys
    client: CsrfClient
    id: int


def register_account(email: str | None = None, *, login: bool = True, one_time_count: int = 10) -> Account:
    client = CsrfClient()
    keys = DeviceKeys()
    payload = registration_payload(email, keys=keys, one_time_count=one_time_count)
    response = client.post_json("/api/v1/auth/register", payload)
    assert response.status_code == 201, response.content
    if login:
        response = client.post_json("/api/v1/auth/login", {"email": payload["email"], "password": payload["password"]})
        assert response.status_code == 200, response.content
    return Account(payload["email"], payload["password"], keys, client, response.json()["id"])


def sign_in(account: Account, **device) -> CsrfClient:
    """A new session of `account` (another browser), with `device_id=` if given (absent: a
    version-1 client's login)."""
    client = CsrfClient()
    response = client.post_json("/api/v1/auth/login", {"email": account.email, "password": account.password, **device})
    assert response.status_code == 200, response.content
    return client
