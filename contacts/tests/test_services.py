"""Contact requests: one row per pair, only the recipient answers, rejections stay hidden,
removal is mutual, every change is announced after the commit."""

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from contacts import services
from contacts.errors import (
    AlreadyContacts,
    AlreadyRequested,
    NotAContact,
    RequestNotFound,
    RequestNotPending,
    SelfRequest,
    UserNotFound,
)
from contacts.models import ContactRequest
from contacts.selectors import are_contacts
from contacts.tests.helpers import ask, befriend, make_user, reject, run_concurrently
from messenger.errors import RateLimited

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    return make_user()


@pytest.fixture
def bob():
    return make_user()


def test_request_stores_one_pending_row_with_the_pair_ordered(alice, bob):
    request = services.contact_request_send(requester=bob, email=alice.email)
    row = ContactRequest.objects.get()
    assert (row.id, row.requester_id, row.recipient_id, row.status) == (request.id, bob.id, alice.id, "pending")
    assert (row.user_low_id, row.user_high_id) == (min(alice.id, bob.id), max(alice.id, bob.id))
    assert row.responded_at is None


def test_request_is_announced_to_the_recipient_only_after_commit(
    alice, bob, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        request = services.contact_request_send(requester=alice, email=bob.email)
        assert published == []
    assert published == [([bob.id], {"type": "contact_request", "id": request.id, "from": alice.email})]


def test_request_email_is_compared_case_insensitively(alice, bob):
    request = services.contact_request_send(requester=alice, email=f"  {bob.email.upper()} ")
    assert request.recipient_id == bob.id


def test_request_to_an_unknown_email_is_not_found(alice):
    with pytest.raises(UserNotFound):
        services.contact_request_send(requester=alice, email="nobody@example.test")


def test_request_to_a_deactivated_account_is_not_found(alice, bob):
    bob.is_active = False
    bob.save()
    with pytest.raises(UserNotFound):
        services.contact_request_send(requester=alice, email=bob.email)


def test_request_to_yourself_is_refused(alice):
    with pytest.raises(SelfRequest):
        services.contact_request_send(requester=alice, email=alice.email.upper())
    assert not ContactRequest.objects.exists()


def test_asking_twice_is_refused(alice, bob):
    ask(alice, bob)
    with pytest.raises(AlreadyRequested):
        services.contact_request_send(requester=alice, email=bob.email)
    assert ContactRequest.objects.count() == 1


def test_asking_back_accepts_the_pending_request(alice, bob, published, django_capture_on_commit_callbacks):
    request_id = ask(bob, alice)
    with django_capture_on_commit_callbacks(execute=True):
        request = services.contact_request_send(requester=alice, email=bob.email)
    assert (request.id, request.status, request.requester_id) == (request_id, "accepted", bob.id)
    assert request.responded_at is not None
    assert ContactRequest.objects.count() == 1
    assert are_contacts(user_id=alice.id, other_id=bob.id)
    assert published == [
        ([bob.id], {"type": "contact_request_answered", "id": request_id, "by": alice.email, "accepted": True})
    ]


@pytest.mark.parametrize("direction", ["same", "other"])
def test_asking_an_existing_contact_is_refused(alice, bob, direction):
    befriend(alice, bob)
    requester, recipient = (alice, bob) if direction == "same" else (bob, alice)
    with pytest.raises(AlreadyContacts):
        services.contact_request_send(requester=requester, email=recipient.email)


def test_a_rejected_requester_is_told_already_requested_as_if_still_pending(alice, bob):
    reject(alice, bob)
    with pytest.raises(AlreadyRequested) as rejected:
        services.contact_request_send(requester=alice, email=bob.email)
    ask(alice, carol := make_user())
    with pytest.raises(AlreadyRequested) as pending:
        services.contact_request_send(requester=alice, email=carol.email)
    assert (rejected.value.code, rejected.value.detail) == (pending.value.code, pending.value.detail)


def test_a_rejection_is_announced_to_nobody(alice, bob, published, django_capture_on_commit_callbacks):
    request_id = ask(alice, bob)
    with django_capture_on_commit_callbacks(execute=True):
        services.contact_request_answer(recipient=bob, request_id=request_id, action="reject")
    assert published == []


def test_who_rejected_may_ask_later_and_the_row_turns_around(alice, bob, published, django_capture_on_commit_callbacks):
    request_id = reject(alice, bob)
    with django_capture_on_commit_callbacks(execute=True):
        request = services.contact_request_send(requester=bob, email=alice.email)
    row = ContactRequest.objects.get()
    assert (row.id, row.requester_id, row.recipient_id, row.status, row.responded_at) == (
        request_id,
        bob.id,
        alice.id,
        "pending",
        None,
    )
    assert request.status == "pending"
    assert published == [([alice.id], {"type": "contact_request", "id": request_id, "from": bob.email})]


def test_accepting_makes_contacts_and_is_announced_to_the_requester(
    alice, bob, published, django_capture_on_commit_callbacks
):
    request_id = ask(alice, bob)
    with django_capture_on_commit_callbacks(execute=True):
        request = services.contact_request_answer(recipient=bob, request_id=request_id, action="accept")
    assert request.status == "accepted"
    assert request.responded_at is not None
    assert are_contacts(user_id=alice.id, other_id=bob.id)
    assert published == [
        ([alice.id], {"type": "contact_request_answered", "id": request_id, "by": bob.email, "accepted": True})
    ]


def test_the_requester_cannot_accept_their_own_request(alice, bob):
    request_id = ask(alice, bob)
    with pytest.raises(RequestNotFound):
        services.contact_request_answer(recipient=alice, request_id=request_id, action="accept")
    assert ContactRequest.objects.get().status == "pending"


def test_a_third_user_cannot_answer_a_request(alice, bob):
    request_id = ask(alice, bob)
    with pytest.raises(RequestNotFound):
        services.contact_request_answer(recipient=make_user(), request_id=request_id, action="accept")
    assert ContactRequest.objects.get().status == "pending"


def test_an_unknown_request_id_is_not_found(alice):
    with pytest.raises(RequestNotFound):
        services.contact_request_answer(recipient=alice, request_id=987654, action="accept")


@pytest.mark.parametrize("first", ["accept", "reject"])
@pytest.mark.parametrize("second", ["accept", "reject"])
def test_an_answered_request_cannot_be_answered_again(alice, bob, first, second):
    request_id = ask(alice, bob)
    services.contact_request_answer(recipient=bob, request_id=request_id, action=first)
    with pytest.raises(RequestNotPending):
        services.contact_request_answer(recipient=bob, request_id=request_id, action=second)


def test_an_unknown_action_is_a_programming_error(alice, bob):
    request_id = ask(alice, bob)
    with pytest.raises(ValueError, match="unknown action"):
        services.contact_request_answer(recipient=bob, request_id=request_id, action="block")


@pytest.mark.parametrize("remover", ["requester", "recipient"])
def test_either_side_removes_the_contact_for_both(alice, bob, remover, published, django_capture_on_commit_callbacks):
    befriend(alice, bob)
    user, other = (alice, bob) if remover == "requester" else (bob, alice)
    with django_capture_on_commit_callbacks(execute=True):
        services.contact_remove(user=user, email=other.email)
    assert not ContactRequest.objects.exists()
    assert not are_contacts(user_id=alice.id, other_id=bob.id)
    assert published == [
        ([other.id], {"type": "contact_removed", "email": user.email}),
        ([user.id], {"type": "contact_removed", "email": other.email}),  # the remover's other tabs
    ]


def test_removing_a_pending_request_is_not_a_contact(alice, bob):
    ask(alice, bob)
    with pytest.raises(NotAContact):
        services.contact_remove(user=alice, email=bob.email)
    assert ContactRequest.objects.get().status == "pending"


@pytest.mark.parametrize("email", ["nobody@example.test", "self"])
def test_removing_an_unknown_email_or_yourself_is_not_a_contact(alice, email):
    with pytest.raises(NotAContact):
        services.contact_remove(user=alice, email=alice.email if email == "self" else email)


def test_a_deactivated_contact_can_still_be_removed(alice, bob):
    befriend(alice, bob)
    bob.is_active = False
    bob.save()
    services.contact_remove(user=alice, email=bob.email)
    assert not ContactRequest.objects.exists()


def test_after_removal_either_side_may_ask_again(alice, bob):
    befriend(alice, bob)
    services.contact_remove(user=alice, email=bob.email)
    assert services.contact_request_send(requester=bob, email=alice.email).status == "pending"


def test_requests_are_rate_limited_per_user_unknown_emails_included(alice, bob, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "contact_request": "2/3600"}
    with pytest.raises(UserNotFound):
        services.contact_request_send(requester=alice, email="nobody@example.test")
    ask(alice, bob)
    with pytest.raises(RateLimited):
        services.contact_request_send(requester=alice, email=make_user().email)
    # Another user has a bucket of their own.
    ask(bob, make_user())


# --- the database refuses what the services never do ----------------------------------


def _row(requester, recipient, **extra) -> ContactRequest:
    low, high = ContactRequest.ordered_pair(requester.id, recipient.id)
    return ContactRequest(requester=requester, recipient=recipient, user_low_id=low, user_high_id=high, **extra)


@pytest.mark.parametrize("direction", ["same", "other"])
def test_database_refuses_a_second_row_for_a_pair(alice, bob, direction):
    _row(alice, bob).save()
    requester, recipient = (alice, bob) if direction == "same" else (bob, alice)
    with pytest.raises(IntegrityError), transaction.atomic():
        _row(requester, recipient).save()


def test_database_refuses_a_self_request(alice):
    with pytest.raises(IntegrityError), transaction.atomic():
        ContactRequest.objects.create(requester=alice, recipient=alice, user_low=alice, user_high=alice)


def test_database_refuses_pair_columns_that_contradict_the_direction(alice, bob):
    third = make_user()
    low, high = sorted([bob.id, third.id])
    with pytest.raises(IntegrityError), transaction.atomic():
        ContactRequest.objects.create(requester=alice, recipient=bob, user_low_id=low, user_high_id=high)


def test_database_refuses_an_answer_without_its_time_and_a_pending_row_with_one(alice, bob):
    with pytest.raises(IntegrityError), transaction.atomic():
        _row(alice, bob, status="accepted").save()
    with pytest.raises(IntegrityError), transaction.atomic():
        _row(alice, bob, responded_at=timezone.now()).save()


def test_database_refuses_an_unknown_status(alice, bob):
    with pytest.raises(IntegrityError), transaction.atomic():
        _row(alice, bob, status="blocked", responded_at=timezone.now()).save()


# --- concurrency (real row locks and concurrent transactions: MariaDB) -------------------


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_crossing_requests_sent_at_the_same_moment_make_one_accepted_pair(settings):
    settings.RATE_LIMITS_ENABLED = False
    for _ in range(5):
        alice, bob = make_user(), make_user()
        outcomes = run_concurrently(
            [
                lambda a=alice, b=bob: services.contact_request_send(requester=a, email=b.email),
                lambda a=alice, b=bob: services.contact_request_send(requester=b, email=a.email),
            ]
        )
        assert sorted(outcome.status for outcome in outcomes) == ["accepted", "pending"], outcomes
        row = ContactRequest.objects.get(user_low_id=min(alice.id, bob.id), user_high_id=max(alice.id, bob.id))
        assert row.status == "accepted"
