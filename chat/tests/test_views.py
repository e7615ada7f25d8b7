import uuid

import pytest
from django.core.management import call_command

from chat.models import Envelope
from tests.helpers import CsrfClient

pytestmark = pytest.mark.django_db

URL = "/api/v1/messages/"


def send(client, to, *, client_id=None, body="Y2lwaGVy"):
    return client.post_json(
        URL, {"client_id": str(client_id or uuid.uuid4()), "to": to.email, "kind": "message", "body": body}
    )


def test_post_stores_and_a_resend_returns_the_same_id(contacts):
    alice, bob = contacts
    client_id = uuid.uuid4()
    first = send(alice.client, bob, client_id=client_id)
    again = send(alice.client, bob, client_id=client_id)
    assert first.status_code == 201
    assert again.status_code == 200
    assert first.json() == again.json() == {"client_id": str(client_id), "id": first.json()["id"]}
    assert Envelope.objects.count() == 1


def test_post_to_a_stranger_is_403_not_a_contact(alice, bob):
    response = send(alice.client, bob)
    assert response.status_code == 403
    assert response.json()["code"] == "not_a_contact"


def test_post_body_over_the_limit_is_413(contacts, settings):
    alice, bob = contacts
    settings.MESSAGE_MAX_BODY_BYTES = 4
    response = send(alice.client, bob, body="12345")
    assert (response.status_code, response.json()["code"]) == (413, "body_too_large")


def test_post_validates_fields(contacts):
    alice, _ = contacts
    response = alice.client.post_json(URL, {"client_id": "nope", "to": "x", "kind": "html", "body": ""})
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"client_id", "to", "kind", "body"}


def test_post_is_rate_limited(contacts, settings):
    alice, bob = contacts
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "message_send": "2/60"}
    assert [send(alice.client, bob).status_code for _ in range(3)] == [201, 201, 429]


def test_post_needs_the_csrf_header(contacts):
    alice, _ = contacts
    plain = CsrfClient()
    plain.cookies = alice.client.cookies
    response = plain.generic("POST", URL, "{}", content_type="application/json", HTTP_X_CSRFTOKEN="wrong")
    assert response.status_code == 403


def test_endpoints_need_a_signed_in_user():
    anonymous = CsrfClient()
    assert anonymous.get(URL).status_code == 401
    assert anonymous.post_json(URL + "ack", {"ids": [1]}).status_code == 401


def test_get_pages_through_undelivered_envelopes_then_ack_removes_them(contacts):
    alice, bob = contacts
    ids = [send(alice.client, bob).json()["id"] for _ in range(3)]

    page = bob.client.get(URL, {"limit": 2}).json()
    assert ([m["id"] for m in page["messages"]], page["has_more"]) == (ids[:2], True)
    assert page["messages"][0]["from"] == alice.email
    page = bob.client.get(URL, {"after": ids[1]}).json()
    assert ([m["id"] for m in page["messages"]], page["has_more"]) == (ids[2:], False)
    assert alice.client.get(URL).json() == {"messages": [], "has_more": False}

    assert bob.client.post_json(URL + "ack", {"ids": ids[:2]}).json() == {"ids": ids[:2]}
    assert [m["id"] for m in bob.client.get(URL).json()["messages"]] == ids[2:]


def test_ack_and_read_of_someone_elses_envelope_mark_nothing(contacts, make_account):
    alice, bob = contacts
    mallory = make_account()
    envelope_id = send(alice.client, bob).json()["id"]
    assert mallory.client.post_json(URL + "ack", {"ids": [envelope_id]}).json() == {"ids": []}
    assert mallory.client.post_json(URL + "read", {"ids": [envelope_id]}).json() == {"ids": []}
    envelope = Envelope.objects.get()
    assert (envelope.delivered_at, envelope.read_at) == (None, None)


def test_read_marks_read(contacts):
    alice, bob = contacts
    envelope_id = send(alice.client, bob).json()["id"]
    assert bob.client.post_json(URL + "read", {"ids": [envelope_id]}).json() == {"ids": [envelope_id]}
    assert Envelope.objects.get().read_at is not None


def test_receipts_tell_the_sender_and_the_recipient_where_messages_stand_and_nobody_else(contacts, make_account):
    alice, bob = contacts
    ids = [send(alice.client, bob).json()["id"] for _ in range(3)]
    bob.client.post_json(f"{URL}ack", {"ids": ids[:2]})
    bob.client.post_json(f"{URL}read", {"ids": ids[:1]})
    query = ",".join(str(pk) for pk in [*ids, ids[-1] + 1000])

    answer = alice.client.get(f"{URL}receipts?ids={query}")
    assert answer.status_code == 200
    assert answer.json() == {"type": "receipts", "delivered": [ids[1]], "read": [ids[0]], "unknown": [ids[2] + 1000]}
    response = make_account().client.get(f"{URL}receipts?ids={query}")
    assert response.json()["delivered"] == response.json()["read"] == []
    assert response.json()["unknown"] == sorted([*ids, ids[-1] + 1000])
    # The recipient: the read state of what it received (docs/PROTOCOL.md section 17.3).
    assert bob.client.get(f"{URL}receipts?ids={query}").json() == answer.json()


TOO_MANY = ",".join(str(pk) for pk in range(1, 1002))


@pytest.mark.parametrize(
    "query",
    [
        "",
        "ids=",
        "ids=a,b",
        "ids=0",
        "ids=-3",
        "ids=1,,2",
        f"ids={TOO_MANY}",
        f"ids=1,{2**63}",
        "ids=100000000000000000000",
        "ids=" + "9" * 5000,
    ],
)
def test_receipts_validate_ids(account, query):
    response = account.client.get(f"{URL}receipts?{query}")
    assert response.status_code == 400
    assert "ids" in response.json()["errors"]


def test_receipts_take_the_largest_database_id(account):
    response = account.client.get(f"{URL}receipts?ids={2**63 - 1}")
    assert response.status_code == 200
    assert response.json()["unknown"] == [2**63 - 1]


@pytest.mark.parametrize("path", ["ack", "read"])
@pytest.mark.parametrize(
    "ids", [[], ["x"], ["1"], [1.0], [1.5], [True], [0], [-1], [2**63], [10**20], [[1]], list(range(1, 1002))]
)
def test_ack_and_read_validate_ids_as_the_socket_does(account, path, ids):
    response = account.client.post_json(URL + path, {"ids": ids})
    assert response.status_code == 400
    assert "ids" in response.json()["errors"]


def test_ack_takes_the_largest_database_id(account):
    response = account.client.post_json(URL + "ack", {"ids": [2**63 - 1]})
    assert (response.status_code, response.json()) == (200, {"ids": []})


@pytest.mark.parametrize("after", [-1, 2**63, 10**20, "x"])
def test_get_validates_after(account, after):
    response = account.client.get(f"{URL}?after={after}")
    assert response.status_code == 400
    assert "after" in response.json()["errors"]


def test_every_endpoint_is_in_the_schema(client_csrf):
    schema = client_csrf.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    assert {"get", "post"} <= set(schema["paths"]["/api/v1/messages/"])
    assert "post" in schema["paths"]["/api/v1/messages/ack"]
    assert "post" in schema["paths"]["/api/v1/messages/read"]


def test_purge_messages_command_dry_run_changes_nothing(contacts, capsys):
    alice, bob = contacts
    envelope_id = send(alice.client, bob).json()["id"]
    Envelope.objects.filter(pk=envelope_id).update(delivered_at="2020-01-01T00:00:00Z")
    call_command("purge_messages", "--dry-run")
    assert "Would erase 1 delivered bodies" in capsys.readouterr().out
    assert Envelope.objects.get().body != ""
    call_command("purge_messages")
    assert "Erased 1 delivered bodies" in capsys.readouterr().out
    assert Envelope.objects.get().body == ""
