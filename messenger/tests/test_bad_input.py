"""Bad input always gets a clear 4xx, never a 500: every JSON route with malformed bodies."""

import json
import uuid

import pytest

from tests.helpers import registration_payload

pytestmark = pytest.mark.django_db

BODIES = [
    None,
    [],
    "text",
    1,
    {"email": None},
    {"email": ["a@b.c"]},
    {"one_time_prekeys": "x"},
    {"action": {"a": 1}},
    {"ids": "x"},
    {"ids": [None]},
    {"client_id": "nope", "to": 1, "kind": 3, "body": None},
    {"key_id": 1e30, "public_key": [], "signature": {}},
    {"password": None, "identity_key": 5, "signed_prekey": [], "one_time_prekeys": {}},
]
PATHS = [
    "/api/v1/auth/register",
    "/api/v1/auth/login",
    "/api/v1/auth/me",
    "/api/v1/contacts/",
    "/api/v1/contacts/requests",
    "/api/v1/contacts/requests/999999",
    "/api/v1/contacts/requests/abc",
    "/api/v1/contacts/remove",
    "/api/v1/keys/bundle",
    "/api/v1/keys/identity/lookup",
    "/api/v1/keys/prekeys",
    "/api/v1/keys/prekeys/count",
    "/api/v1/keys/signed-prekey",
    "/api/v1/keys/identity",
    "/api/v1/messages/",
    "/api/v1/messages/?after=abc&limit=-1",
    "/api/v1/messages/ack",
    "/api/v1/messages/read",
]


def test_malformed_requests_never_get_a_500(account, settings):
    settings.RATE_LIMITS_ENABLED = False
    client = account.client
    for path in PATHS:
        assert client.get(path).status_code < 500, path
        for method in (client.post, client.put, client.delete):
            for body in BODIES:
                response = method(path, body, format="json")
                assert response.status_code < 500, (method.__name__, path, body, response.content[:300])
                if response.status_code >= 400:
                    assert response["Content-Type"] == "application/json", (method.__name__, path, response.status_code)
                    assert "detail" in response.json()


def test_unknown_api_route_is_a_json_404_and_other_pages_stay_html(client):
    response = client.get("/api/v1/no-such-route")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert client.get("/no-such-page").status_code == 404
    assert "text/html" in client.get("/no-such-page")["Content-Type"]


# Routes that parse a JSON body, with a body that is valid but for the field poisoned below.
JSON_ROUTES = [
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/contacts/requests"),
    ("put", "/api/v1/contacts/requests/1"),
    ("put", "/api/v1/keys/identity"),
    ("post", "/api/v1/keys/prekeys"),
    ("put", "/api/v1/keys/signed-prekey"),
    ("post", "/api/v1/messages/"),
    ("post", "/api/v1/messages/ack"),
    ("post", "/api/v1/messages/read"),
]
DEEP = 50_000
NESTED = ["[" * DEEP + "]" * DEEP, '{"a":' * DEEP + "1" + "}" * DEEP, '{"ids":' + "[" * DEEP + "]" * DEEP + "}"]


def test_json_too_deep_to_parse_is_a_400_on_every_route(account, settings):
    """Python's JSON parser raises RecursionError (not a ValueError) on deep nesting: DRF's
    parser let it through as a 500."""
    settings.RATE_LIMITS_ENABLED = False
    client = account.client
    for path in PATHS:
        for method in (client.post, client.put, client.delete):
            for body in NESTED:
                response = method(path, body, content_type="application/json")
                assert response.status_code < 500, (method.__name__, path, response.content[:300])
                if (method.__name__, path) in JSON_ROUTES:
                    assert (response.status_code, response.json()["code"]) == (400, "nesting_too_deep"), path
    for method, path in JSON_ROUTES:
        for body in NESTED:
            response = getattr(client, method)(path, body, content_type="application/json")
            assert (response.status_code, response.json()["code"]) == (400, "nesting_too_deep"), path


def _valid_bodies() -> dict[str, dict]:
    registration = registration_payload()
    return {
        "/api/v1/auth/register": registration,
        "/api/v1/auth/login": {"email": registration["email"], "password": registration["password"]},
        "/api/v1/contacts/requests": {"email": "someone@example.test"},
        "/api/v1/contacts/requests/1": {"action": "accept"},
        "/api/v1/keys/identity": {k: v for k, v in registration.items() if k != "email"},
        "/api/v1/keys/prekeys": {"one_time_prekeys": registration["one_time_prekeys"]},
        "/api/v1/keys/signed-prekey": registration["signed_prekey"],
        "/api/v1/messages/": {"client_id": str(uuid.uuid4()), "to": "a@b.test", "kind": "message", "body": "Yg=="},
        "/api/v1/messages/ack": {"ids": [1]},
        "/api/v1/messages/read": {"ids": [1]},
    }


def _poisoned(value, poison: str):
    """Every variant of `value` with `poison` put into one of its strings (values and keys)."""
    if isinstance(value, str):
        yield value + poison
        yield poison
    elif isinstance(value, dict):
        yield {**value, "extra" + poison: 1}
        for key, item in value.items():
            for variant in _poisoned(item, poison):
                yield {**value, key: variant}
    elif isinstance(value, list) and value:
        for variant in _poisoned(value[0], poison):
            yield [variant, *value[1:]]


@pytest.mark.parametrize(
    "poison",
    [
        pytest.param("\x00", id="nul"),
        pytest.param("\ud800", id="high-surrogate"),
        pytest.param("\udfff", id="low-surrogate"),
        pytest.param("a\udc00b", id="surrogate-inside"),
    ],
)
def test_nul_and_lone_surrogates_are_refused_in_every_string_of_every_body(account, settings, poison):
    """Such strings fail in the database drivers and the password hasher (UnicodeEncodeError),
    and NUL was refused only where a serializer's CharField happened to check it."""
    settings.RATE_LIMITS_ENABLED = False
    bodies = _valid_bodies()
    for method, path in JSON_ROUTES:
        for body in _poisoned(bodies[path], poison):
            text = json.dumps(body)  # ensure_ascii: the poison travels as a \\u escape
            response = getattr(account.client, method)(path, text, content_type="application/json")
            assert (response.status_code, response.json()["code"]) == (400, "invalid_string"), (path, text[:200])
