"""The contact graph as the chat and keys apps read it."""

import pytest

from contacts import selectors
from contacts.services import contact_request_answer
from contacts.tests.helpers import ask, befriend, make_user, reject

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    return make_user()


@pytest.fixture
def bob():
    return make_user()


def test_are_contacts_only_once_accepted_and_in_both_directions(alice, bob):
    request_id = ask(alice, bob)
    assert not selectors.are_contacts(user_id=alice.id, other_id=bob.id)
    assert not selectors.are_contacts(user_id=bob.id, other_id=alice.id)
    contact_request_answer(recipient=bob, request_id=request_id, action="accept")
    assert selectors.are_contacts(user_id=alice.id, other_id=bob.id)
    assert selectors.are_contacts(user_id=bob.id, other_id=alice.id)


def test_are_contacts_is_false_for_a_rejected_request_strangers_and_yourself(alice, bob):
    reject(alice, bob)
    assert not selectors.are_contacts(user_id=alice.id, other_id=bob.id)
    assert not selectors.are_contacts(user_id=bob.id, other_id=alice.id)
    assert not selectors.are_contacts(user_id=alice.id, other_id=make_user().id)
    assert not selectors.are_contacts(user_id=alice.id, other_id=alice.id)


def test_contact_ids_lists_accepted_contacts_whoever_asked(alice, bob):
    carol, dave, erin = make_user(), make_user(), make_user()
    befriend(alice, bob)
    befriend(carol, alice)
    ask(alice, dave)
    reject(erin, alice)
    assert selectors.contact_ids(user_id=alice.id) == sorted([bob.id, carol.id])
    assert selectors.contact_ids(user_id=bob.id) == [alice.id]
    assert selectors.contact_ids(user_id=dave.id) == []


def test_contact_ids_is_one_query(alice, bob, django_assert_num_queries):
    befriend(alice, bob)
    with django_assert_num_queries(1):
        selectors.contact_ids(user_id=alice.id)


def test_are_related_covers_contacts_and_pending_requests_both_ways(alice, bob):
    carol, dave = make_user(), make_user()
    befriend(alice, bob)
    ask(carol, alice)
    for a, b in [(alice, bob), (bob, alice), (alice, carol), (carol, alice)]:
        assert selectors.are_related(user_id=a.id, other_id=b.id)
    assert not selectors.are_related(user_id=alice.id, other_id=dave.id)
    assert not selectors.are_related(user_id=alice.id, other_id=alice.id)


def test_a_rejected_request_relates_only_its_requester(alice, bob):
    """To its requester a rejected request must look pending; the one who rejected is done."""
    reject(alice, bob)
    assert selectors.are_related(user_id=alice.id, other_id=bob.id)
    assert not selectors.are_related(user_id=bob.id, other_id=alice.id)


def test_pending_counterparty_ids_excludes_contacts_and_rejections(alice, bob):
    carol, dave, erin = make_user(), make_user(), make_user()
    befriend(alice, bob)
    ask(alice, carol)
    ask(dave, alice)
    reject(erin, alice)
    assert selectors.pending_counterparty_ids(user_id=alice.id) == sorted([carol.id, dave.id])
    assert selectors.pending_counterparty_ids(user_id=erin.id) == []


def test_requests_pending_splits_incoming_and_outgoing(alice, bob):
    carol = make_user()
    to_bob = ask(alice, bob)
    from_carol = ask(carol, alice)
    mine = selectors.requests_pending(user_id=alice.id)
    assert [(r.id, r.email, r.status) for r in mine.outgoing] == [(to_bob, bob.email, "pending")]
    assert [(r.id, r.email, r.status) for r in mine.incoming] == [(from_carol, carol.email, "pending")]
    theirs = selectors.requests_pending(user_id=bob.id)
    assert [(r.id, r.email) for r in theirs.incoming] == [(to_bob, alice.email)]
    assert theirs.outgoing == []


def test_a_rejected_request_stays_pending_in_the_requesters_list_and_leaves_the_recipients(alice, bob):
    request_id = reject(alice, bob)
    outgoing = selectors.requests_pending(user_id=alice.id).outgoing
    assert [(r.id, r.email, r.status, r.responded_at) for r in outgoing] == [(request_id, bob.email, "pending", None)]
    assert selectors.requests_pending(user_id=bob.id).incoming == []


def test_accepted_requests_leave_both_lists(alice, bob):
    befriend(alice, bob)
    assert selectors.requests_pending(user_id=alice.id) == selectors.PendingRequests([], [])
    assert selectors.requests_pending(user_id=bob.id) == selectors.PendingRequests([], [])


def test_contacts_of_lists_emails_alphabetically_with_the_acceptance_time():
    me = make_user("me@example.test")
    zoe, adam = make_user("zoe@example.test"), make_user("adam@example.test")
    befriend(me, zoe)
    befriend(adam, me)
    contacts = selectors.contacts_of(user_id=me.id)
    assert [c.email for c in contacts] == ["adam@example.test", "zoe@example.test"]
    assert all(c.since is not None for c in contacts)
    assert [c.id for c in contacts] == [adam.id, zoe.id]


def test_contact_by_email_answers_none_alike_for_strangers_pending_and_unknown(alice, bob):
    carol = make_user()
    befriend(alice, bob)
    ask(alice, carol)
    assert selectors.contact_by_email(user_id=alice.id, email=bob.email) == bob
    assert selectors.contact_by_email(user_id=alice.id, email=carol.email) is None
    assert selectors.contact_by_email(user_id=carol.id, email=alice.email) is None
    assert selectors.contact_by_email(user_id=alice.id, email="nobody@example.test") is None
    assert selectors.related_by_email(user_id=carol.id, email=alice.email) == alice


def test_accepted_pairs_keeps_only_accepted_contacts_in_either_order(alice, bob, django_assert_num_queries):
    carol, dave = make_user(), make_user()
    befriend(alice, bob)
    ask(alice, carol)  # pending
    reject(dave, alice)
    pairs = {(alice.id, bob.id), (bob.id, alice.id), (alice.id, carol.id), (dave.id, alice.id), (alice.id, alice.id)}
    with django_assert_num_queries(1):
        accepted = selectors.accepted_pairs(pairs=pairs)
    assert accepted == {(alice.id, bob.id), (bob.id, alice.id)}
    assert selectors.accepted_pairs(pairs=[]) == set()
