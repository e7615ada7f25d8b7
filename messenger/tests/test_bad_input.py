"""Bad input always gets a clear 4xx, never a 500: every JSON route with malformed bodies."""

import pytest

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
