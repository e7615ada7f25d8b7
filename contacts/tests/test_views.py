"""/api/v1/contacts/: the happy paths, authentication, CSRF, and every attempt to break a rule
through the API."""

import pytest
from rest_framework.test import APIClient

from contacts.models import ContactRequest

pytestmark = pytest.mark.django_db

REQUESTS = "/api/v1/contacts/requests"
CONTACTS = "/api/v1/contacts/"
REMOVE = "/api/v1/contacts/remove"


def answer_url(request_id: int) -> str:
    return f"{REQUESTS}/{request_id}"


def send(a, b):
    response = a.client.post_json(REQUESTS, {"email": b.email})
    assert response.status_code == 201, response.content
    return response.json()["id"]


def befriend(a, b):
    response = b.client.put_json(answer_url(send(a, b)), {"action": "accept"})
    assert response.status_code == 200, response.content


@pytest.fixture
def alice(make_account):
    return make_account()


@pytest.fixture
def bob(make_account):
    return make_account()


def test_send_request_answers_201_with_the_request(alice, bob):
    response = alice.client.post_json(REQUESTS, {"email": bob.email.upper()})
    assert response.status_code == 201
    body = response.json()
    row = ContactRequest.objects.get()
    assert body == {
        "id": row.id,
        "email": bob.email,
        "status": "pending",
        "created_at": body["created_at"],
        "responded_at": None,
    }


def test_asking_back_answers_200_with_the_accepted_request(alice, bob):
    request_id = send(bob, alice)
    response = alice.client.post_json(REQUESTS, {"email": bob.email})
    assert response.status_code == 200
    assert (response.json()["id"], response.json()["status"]) == (request_id, "accepted")


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"email": "nobody@example.test"}, 404, "user_not_found"),
        ({"email": "not an email"}, 400, "invalid"),
        ({}, 400, "invalid"),
        ({"email": ["a@example.test"]}, 400, "invalid"),
    ],
)
def test_send_request_refuses_bad_or_unknown_emails(alice, payload, status, code):
    response = alice.client.post_json(REQUESTS, payload)
    assert (response.status_code, response.json()["code"]) == (status, code)


def test_send_request_to_yourself_is_409(alice):
    response = alice.client.post_json(REQUESTS, {"email": alice.email})
    assert (response.status_code, response.json()["code"]) == (409, "self_request")


def test_send_request_twice_is_409(alice, bob):
    send(alice, bob)
    response = alice.client.post_json(REQUESTS, {"email": bob.email})
    assert (response.status_code, response.json()["code"]) == (409, "already_requested")


def test_send_request_to_a_contact_is_409(alice, bob):
    befriend(alice, bob)
    response = bob.client.post_json(REQUESTS, {"email": alice.email})
    assert (response.status_code, response.json()["code"]) == (409, "already_contacts")


def test_send_request_is_rate_limited_with_retry_after(alice, bob, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "contact_request": "1/3600"}
    send(alice, bob)
    response = alice.client.post_json(REQUESTS, {"email": "nobody@example.test"})
    assert (response.status_code, response.json()["code"]) == (429, "rate_limited")
    assert int(response["Retry-After"]) > 0


def test_list_requests_shows_incoming_and_outgoing(alice, bob, make_account):
    carol = make_account()
    to_bob = send(alice, bob)
    from_carol = send(carol, alice)
    body = alice.client.get(REQUESTS).json()
    assert [(r["id"], r["email"]) for r in body["outgoing"]] == [(to_bob, bob.email)]
    assert [(r["id"], r["email"]) for r in body["incoming"]] == [(from_carol, carol.email)]
    assert set(body["incoming"][0]) == {"id", "email", "created_at"}


def test_accept_makes_both_contacts_listed_with_since(alice, bob):
    request_id = send(alice, bob)
    response = bob.client.put_json(answer_url(request_id), {"action": "accept"})
    assert response.status_code == 200
    assert response.json()["status"] == "accepted"
    assert response.json()["responded_at"] is not None
    [mine] = alice.client.get(CONTACTS).json()
    [theirs] = bob.client.get(CONTACTS).json()
    assert (mine["email"], theirs["email"]) == (bob.email, alice.email)
    assert mine["since"] == theirs["since"] == response.json()["responded_at"]
    assert alice.client.get(REQUESTS).json() == {"incoming": [], "outgoing": []}


def test_reject_hides_the_request_from_the_recipient_but_not_from_the_requester(alice, bob):
    request_id = send(alice, bob)
    response = bob.client.put_json(answer_url(request_id), {"action": "reject"})
    assert (response.status_code, response.json()["status"]) == (200, "rejected")
    assert bob.client.get(REQUESTS).json() == {"incoming": [], "outgoing": []}
    assert [r["id"] for r in alice.client.get(REQUESTS).json()["outgoing"]] == [request_id]
    again = alice.client.post_json(REQUESTS, {"email": bob.email})
    assert (again.status_code, again.json()["code"]) == (409, "already_requested")
    assert alice.client.get(CONTACTS).json() == []


@pytest.mark.parametrize("who", ["requester", "stranger"])
def test_only_the_recipient_may_answer(alice, bob, make_account, who):
    request_id = send(alice, bob)
    intruder = alice if who == "requester" else make_account()
    response = intruder.client.put_json(answer_url(request_id), {"action": "accept"})
    assert (response.status_code, response.json()["code"]) == (404, "request_not_found")
    assert ContactRequest.objects.get().status == "pending"


def test_answering_twice_is_409(alice, bob):
    request_id = send(alice, bob)
    bob.client.put_json(answer_url(request_id), {"action": "reject"})
    response = bob.client.put_json(answer_url(request_id), {"action": "accept"})
    assert (response.status_code, response.json()["code"]) == (409, "request_not_pending")
    assert ContactRequest.objects.get().status == "rejected"


@pytest.mark.parametrize("payload", [{"action": "block"}, {"action": ""}, {}, {"action": ["accept"]}])
def test_other_actions_are_400(alice, bob, payload):
    request_id = send(alice, bob)
    response = bob.client.put_json(answer_url(request_id), payload)
    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert "action" in response.json()["errors"]


def test_answering_an_unknown_id_is_404(bob):
    assert bob.client.put_json(answer_url(424242), {"action": "accept"}).status_code == 404
    assert bob.client.put_json(answer_url(2**63 - 1), {"action": "accept"}).status_code == 404


@pytest.mark.parametrize("request_id", [0, 2**63, 10**20, "9" * 100])
def test_answering_an_id_outside_the_database_range_is_400(bob, request_id):
    response = bob.client.put_json(answer_url(request_id), {"action": "accept"})
    assert (response.status_code, response.json()["code"]) == (400, "invalid_id")


@pytest.mark.parametrize("remover", ["requester", "recipient"])
def test_delete_removes_the_contact_for_both(alice, bob, remover):
    befriend(alice, bob)
    user, other = (alice, bob) if remover == "requester" else (bob, alice)
    response = user.client.post_json(REMOVE, {"email": other.email})
    assert response.status_code == 204
    assert alice.client.get(CONTACTS).json() == bob.client.get(CONTACTS).json() == []


def test_delete_of_a_pending_request_or_unknown_email_is_404(alice, bob):
    send(alice, bob)
    for email in (bob.email, "nobody@example.test"):
        response = alice.client.post_json(REMOVE, {"email": email})
        assert (response.status_code, response.json()["code"]) == (404, "not_a_contact")
    assert ContactRequest.objects.count() == 1


def test_a_stranger_cannot_delete_someone_elses_contact(alice, bob, make_account):
    befriend(alice, bob)
    assert make_account().client.post_json(REMOVE, {"email": bob.email}).status_code == 404
    assert ContactRequest.objects.get().status == "accepted"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", CONTACTS),
        ("get", REQUESTS),
        ("post", REQUESTS),
        ("put", f"{REQUESTS}/1"),
        ("post", REMOVE),
    ],
)
def test_every_route_needs_a_signed_in_user(client_csrf, method, path):
    response = getattr(client_csrf, method)(path, {}, format="json")
    assert response.status_code == 401


@pytest.mark.parametrize("route", ["send", "answer", "remove"])
def test_unsafe_routes_refuse_a_signed_in_request_without_the_csrf_header(alice, bob, make_account, route):
    """The cookies alone (what a forged cross-site request carries) are not enough."""
    carol = make_account()
    pending = send(carol, alice)
    befriend(bob, alice)
    forger = APIClient(enforce_csrf_checks=True)
    forger.cookies = alice.client.cookies
    if route == "send":
        response = forger.post(REQUESTS, {"email": make_account().email}, format="json")
    elif route == "answer":
        response = forger.put(answer_url(pending), {"action": "accept"}, format="json")
    else:
        response = forger.post(REMOVE, {"email": bob.email}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert sorted(ContactRequest.objects.values_list("status", flat=True)) == ["accepted", "pending"]


def test_remove_refuses_a_malformed_email_and_the_old_route_is_gone(alice, bob):
    befriend(alice, bob)
    response = alice.client.post_json(REMOVE, {"email": "not an email"})
    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    response = alice.client.delete(f"{CONTACTS}{bob.email}")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert alice.client.get(CONTACTS).json()[0]["email"] == bob.email
