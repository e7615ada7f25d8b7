"""Writes of the contact graph: requests, answers, removal.

The rules, and why:
- A request needs the recipient's approval before the two can exchange keys or messages
  (the prototype let strangers fetch bundles and send messages).
- One row per unordered pair (a database constraint): if B already asked A, A's request is
  the answer and accepts B's request; two crossing requests sent at the same moment end the
  same way (the second insert hits the unique pair index and is retried as an answer).
- A rejection is never revealed to the requester, as Signal does with message requests
  (Matrix does show a declined invite; we do not, so that saying no has no social cost and
  gives a harasser nothing to react to). To the requester a rejected request looks pending
  forever: it stays in their outgoing list, asking again answers 409 `already_requested`,
  and they get no event. The one who rejected may still send a request later; the old row
  then becomes a fresh pending request in the other direction.
- Removal is mutual and deletes the row: afterwards either side may send a new request.
- Every attempt to send a request counts against the `contact_request` rate limit, including
  those answered 404, so the endpoint cannot be used to enumerate accounts quickly.
- Each change is announced to the other user after the commit (a push is only a nudge;
  clients resync from the API). Nothing is announced on a rejection.

Logs carry ids only, never emails.
"""

import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from accounts.ratelimit import rate_limit_hit
from accounts.selectors import user_by_email
from contacts import events
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
from realtime import bus

logger = logging.getLogger(__name__)

Status = ContactRequest.Status
ACTIONS = ("accept", "reject")


# --- events (contacts.events, published through realtime.bus) ------------------------------


def _announce_request(request: ContactRequest) -> None:
    event = events.contact_request_event(request_id=request.id, from_email=request.requester.email)
    bus.publish_on_commit([request.recipient_id], event)


def _announce_accepted(request: ContactRequest) -> None:
    event = events.contact_request_answered_event(
        request_id=request.id, by_email=request.recipient.email, accepted=True
    )
    bus.publish_on_commit([request.requester_id], event)


def _announce_removed(*, removed_by: User, other: User) -> None:
    # Both sides: the other person, and the remover's own other tabs.
    bus.publish_on_commit([other.id], events.contact_removed_event(email=removed_by.email))
    bus.publish_on_commit([removed_by.id], events.contact_removed_event(email=other.email))


# --- services ----------------------------------------------------------------------------


def contact_request_send(*, requester: User, email: str) -> ContactRequest:
    """Ask the user with this email to become a contact. Returns the new pending request,
    or, when that user had already asked `requester`, their request now accepted."""
    # Counted before the lookup, so probing for unknown emails costs a token too.
    rate_limit_hit("contact_request", str(requester.id))
    recipient = user_by_email(email=email)
    if recipient is None:
        raise UserNotFound()
    if recipient.id == requester.id:
        raise SelfRequest()
    try:
        return _request_or_answer(requester=requester, recipient=recipient)
    except IntegrityError:
        # The other user's request for this pair was inserted between our read and our
        # insert; the unique pair index refused ours. Run the rules again against theirs.
        return _request_or_answer(requester=requester, recipient=recipient)


@transaction.atomic
def _request_or_answer(*, requester: User, recipient: User) -> ContactRequest:
    low, high = ContactRequest.ordered_pair(requester.id, recipient.id)
    existing = (
        ContactRequest.objects.select_for_update()
        .select_related("requester", "recipient")
        .filter(user_low_id=low, user_high_id=high)
        .first()
    )
    if existing is None:
        with transaction.atomic():  # a savepoint, so a lost insert race leaves the outer transaction usable
            request = ContactRequest.objects.create(
                requester=requester, recipient=recipient, user_low_id=low, user_high_id=high
            )
        _announce_request(request)
        logger.info("contact request id=%s sent", request.id)
        return request
    if existing.status == Status.ACCEPTED:
        raise AlreadyContacts()
    if existing.requester_id == requester.id:
        # Pending, or rejected: the requester must not be able to tell which.
        raise AlreadyRequested()
    if existing.status == Status.PENDING:
        # They asked first: this request is the answer.
        _answer(existing, Status.ACCEPTED)
        logger.info("contact request id=%s accepted by a crossing request", existing.id)
        return existing
    # `requester` rejected the other user's request earlier and now asks them: the same row
    # becomes a fresh request in the other direction.
    existing.requester, existing.recipient = requester, recipient
    existing.status = Status.PENDING
    existing.created_at = timezone.now()
    existing.responded_at = None
    existing.save(update_fields=["requester", "recipient", "status", "created_at", "responded_at"])
    _announce_request(existing)
    logger.info("contact request id=%s sent after an earlier rejection", existing.id)
    return existing


def _answer(request: ContactRequest, status: str) -> None:
    request.status = status
    request.responded_at = timezone.now()
    request.save(update_fields=["status", "responded_at"])
    if status == Status.ACCEPTED:
        _announce_accepted(request)


@transaction.atomic
def contact_request_answer(*, recipient: User, request_id: int, action: str) -> ContactRequest:
    """Accept or reject a pending request addressed to `recipient`. Anyone else (the
    requester included) gets the same 404 as for a request that does not exist."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    request = (
        ContactRequest.objects.select_for_update()
        .select_related("requester", "recipient")
        .filter(id=request_id, recipient_id=recipient.id)
        .first()
    )
    if request is None:
        raise RequestNotFound()
    if request.status != Status.PENDING:
        raise RequestNotPending()
    _answer(request, Status.ACCEPTED if action == "accept" else Status.REJECTED)
    logger.info("contact request id=%s %sed", request.id, action)
    return request


@transaction.atomic
def contact_remove(*, user: User, email: str) -> None:
    """End a contact relation, for both sides. Works on a deactivated contact too."""
    other = user_by_email(email=email, active_only=False)
    if other is None or other.id == user.id:
        raise NotAContact()
    low, high = ContactRequest.ordered_pair(user.id, other.id)
    deleted, _ = ContactRequest.objects.filter(user_low_id=low, user_high_id=high, status=Status.ACCEPTED).delete()
    if not deleted:
        raise NotAContact()
    _announce_removed(removed_by=user, other=other)
    logger.info("contact removed users=%s,%s", low, high)
