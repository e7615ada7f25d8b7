"""Reads of the contact graph, always from one user's point of view.

The chat and keys apps call `are_contacts`, `contact_ids` and `are_related` (keep their
names and keyword-only signatures): they are the whole answer to "may these two talk?".

What a requester sees of a rejected request: exactly what they would see of a pending one
(see contacts.services). `are_related` and `request_as_seen_by` implement that rule; nothing
else returns a rejected request to its requester.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Q

from accounts.models import User
from accounts.selectors import user_by_email
from contacts.models import ContactRequest

Status = ContactRequest.Status

# Two bound parameters per pair: well under SQLite's historical limit of 999 per statement.
PAIRS_PER_QUERY = 400


@dataclass(frozen=True)
class RequestSummary:
    """A contact request as one of its two users sees it: `email` is the other user."""

    id: int
    email: str
    status: str
    created_at: datetime
    responded_at: datetime | None


@dataclass(frozen=True)
class PendingRequests:
    incoming: list[RequestSummary]
    outgoing: list[RequestSummary]


@dataclass(frozen=True)
class Contact:
    id: int
    email: str
    since: datetime


def _pair(user_id: int, other_id: int) -> Q:
    low, high = ContactRequest.ordered_pair(user_id, other_id)
    return Q(user_low_id=low, user_high_id=high)


def _involving(user_id: int) -> Q:
    return Q(user_low_id=user_id) | Q(user_high_id=user_id)


def _other(user_id: int, low: int, high: int) -> int:
    return high if low == user_id else low


def are_contacts(*, user_id: int, other_id: int) -> bool:
    """True when the two users accepted each other (the relation is symmetric)."""
    if user_id == other_id:
        return False
    return ContactRequest.objects.filter(_pair(user_id, other_id), status=Status.ACCEPTED).exists()


def accepted_pairs(*, pairs: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
    """The given (user_id, other_id) pairs that are accepted contacts, in one query (the chat
    app checks a whole batch of envelopes at once; more than PAIRS_PER_QUERY distinct pairs
    take one query per that many).

    Hand-written SQL: it is the ORM query `filter(Q(user_low_id=, user_high_id=) | ..., status=)`
    word for word, but the ORM compiles one lookup per pair, and for a batch of 200 envelopes
    that compiling cost about 15 % of the chat server's CPU under load (the statement itself,
    one index probe per pair on the unique pair index, is cheap). Only identifiers from `_meta`
    and placeholders go into the SQL; every value is a bound parameter."""
    wanted = {pair for pair in pairs if pair[0] != pair[1]}
    if not wanted:
        return set()
    ordered = sorted({ContactRequest.ordered_pair(*pair) for pair in wanted})
    meta, quote = ContactRequest._meta, connection.ops.quote_name
    low, high = (quote(meta.get_field(name).column) for name in ("user_low", "user_high"))
    status = quote(meta.get_field("status").column)
    accepted: set[tuple[int, int]] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(ordered), PAIRS_PER_QUERY):
            chunk = ordered[start : start + PAIRS_PER_QUERY]
            either = " OR ".join([f"({low} = %s AND {high} = %s)"] * len(chunk))
            cursor.execute(
                f"SELECT {low}, {high} FROM {quote(meta.db_table)} WHERE {status} = %s AND ({either})",  # noqa: S608 - identifiers from _meta only
                [Status.ACCEPTED.value, *(value for pair in chunk for value in pair)],
            )
            accepted.update(cursor.fetchall())
    return {pair for pair in wanted if ContactRequest.ordered_pair(*pair) in accepted}


def contact_ids(*, user_id: int) -> list[int]:
    """Ids of every accepted contact of the user."""
    rows = ContactRequest.objects.filter(_involving(user_id), status=Status.ACCEPTED).values_list(
        "user_low_id", "user_high_id"
    )
    return sorted(_other(user_id, low, high) for low, high in rows)


def pending_counterparty_ids(*, user_id: int) -> list[int]:
    """Ids of the users with a pending request to or from this user (rejected ones excluded:
    a rejected requester is told nothing new)."""
    rows = ContactRequest.objects.filter(_involving(user_id), status=Status.PENDING).values_list(
        "user_low_id", "user_high_id"
    )
    return sorted(_other(user_id, low, high) for low, high in rows)


def are_related(*, user_id: int, other_id: int) -> bool:
    """True when `user_id` may look up `other_id`'s identity key: accepted contacts, a
    pending request in either direction, and (from the requester's side only) a request
    that was rejected, because to its requester a rejected request must look pending."""
    if user_id == other_id:
        return False
    return ContactRequest.objects.filter(
        _pair(user_id, other_id),
        Q(status__in=[Status.ACCEPTED, Status.PENDING]) | Q(status=Status.REJECTED, requester_id=user_id),
    ).exists()


def contact_by_email(*, user_id: int, email: str) -> User | None:
    """The active user with this email if they are an accepted contact of `user_id`, else
    None: an unknown email, a stranger and a pending request are the same answer."""
    other = user_by_email(email=email)
    if other is None or not are_contacts(user_id=user_id, other_id=other.id):
        return None
    return other


def related_by_email(*, user_id: int, email: str) -> User | None:
    """Like `contact_by_email`, for `are_related` users (identity key lookups)."""
    other = user_by_email(email=email)
    if other is None or not are_related(user_id=user_id, other_id=other.id):
        return None
    return other


def request_as_seen_by(request: ContactRequest, *, user_id: int) -> RequestSummary:
    """The request from `user_id`'s side: the other user's email, and "pending" in place of
    "rejected" when `user_id` is the requester."""
    mine = request.requester_id == user_id
    other = request.recipient if mine else request.requester
    status = request.status
    if mine and status == Status.REJECTED:
        return RequestSummary(request.id, other.email, Status.PENDING, request.created_at, None)
    return RequestSummary(request.id, other.email, status, request.created_at, request.responded_at)


def requests_pending(*, user_id: int) -> PendingRequests:
    """Incoming requests waiting for this user's answer and outgoing ones not yet accepted,
    newest first."""
    incoming = ContactRequest.objects.filter(recipient_id=user_id, status=Status.PENDING).select_related("requester")
    outgoing = ContactRequest.objects.filter(
        requester_id=user_id, status__in=[Status.PENDING, Status.REJECTED]
    ).select_related("recipient")
    return PendingRequests(
        incoming=[request_as_seen_by(r, user_id=user_id) for r in incoming],
        outgoing=[request_as_seen_by(r, user_id=user_id) for r in outgoing],
    )


def contacts_of(*, user_id: int) -> list[Contact]:
    """Accepted contacts, alphabetically by email; `since` is when the request was accepted."""
    rows = ContactRequest.objects.filter(_involving(user_id), status=Status.ACCEPTED).select_related(
        "requester", "recipient"
    )
    contacts = []
    for row in rows:
        other = row.recipient if row.requester_id == user_id else row.requester
        contacts.append(Contact(id=other.id, email=other.email, since=row.responded_at))
    return sorted(contacts, key=lambda contact: contact.email)
