"""The contacts API (`/api/v1/contacts/`): requests, answers, the contact list, removal.

Every view needs a signed-in user (the default permission) and, for unsafe methods, the CSRF
header (enforced by the cookie authentication).
"""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from contacts import selectors, services
from contacts.models import ContactRequest
from contacts.serializers import (
    ContactRemoveSerializer,
    ContactRequestAnswerSerializer,
    ContactRequestCreateSerializer,
    ContactRequestSerializer,
    ContactSerializer,
    PendingRequestsSerializer,
)
from messenger.api import ERRORS, error_doc
from messenger.validation import MAX_DATABASE_ID, InvalidInput, is_database_id


class ContactListView(APIView):
    """The signed-in user's accepted contacts."""

    @extend_schema(responses={200: ContactSerializer(many=True), 401: ERRORS[401]})
    def get(self, request):
        return Response(ContactSerializer(selectors.contacts_of(user_id=request.user.id), many=True).data)


class ContactRequestsView(APIView):
    """Pending contact requests, and sending a new one."""

    @extend_schema(responses={200: PendingRequestsSerializer, 401: ERRORS[401]})
    def get(self, request):
        return Response(PendingRequestsSerializer(selectors.requests_pending(user_id=request.user.id)).data)

    @extend_schema(
        request=ContactRequestCreateSerializer,
        description=(
            "Ask another account to become a contact. If that account had already asked you, "
            "this accepts their request instead (200). A rejection is never revealed: to its "
            "requester a rejected request stays `pending`, and asking again answers 409 "
            "`already_requested` as it does while the request really is pending. Every call "
            "counts against the `contact_request` rate limit, unknown emails included."
        ),
        responses={
            201: OpenApiResponse(ContactRequestSerializer, description="A new pending request."),
            200: OpenApiResponse(ContactRequestSerializer, description="Their earlier request, now accepted."),
            400: ERRORS[400],
            401: ERRORS[401],
            403: ERRORS[403],
            404: error_doc("`user_not_found`: no active account has this email."),
            409: error_doc("`self_request`, `already_requested` or `already_contacts`."),
            429: ERRORS[429],
        },
    )
    def post(self, request):
        serializer = ContactRequestCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        contact_request = services.contact_request_send(requester=request.user, **serializer.validated_data)
        created = contact_request.status == ContactRequest.Status.PENDING
        return Response(
            ContactRequestSerializer(selectors.request_as_seen_by(contact_request, user_id=request.user.id)).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class ContactRequestAnswerView(APIView):
    """Answer a contact request addressed to you."""

    @extend_schema(
        request=ContactRequestAnswerSerializer,
        description="Only the recipient may answer, and only while the request is pending.",
        responses={
            200: ContactRequestSerializer,
            400: ERRORS[400],
            401: ERRORS[401],
            403: ERRORS[403],
            404: error_doc("`request_not_found`: no such request addressed to you."),
            409: error_doc("`request_not_pending`: already answered."),
        },
    )
    def put(self, request, request_id: int):
        if not is_database_id(request_id):
            # The route takes any run of digits; a row id is a signed BIGINT (messenger.validation).
            raise InvalidInput(f"The request id must be from 1 to {MAX_DATABASE_ID}.", code="invalid_id")
        serializer = ContactRequestAnswerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        contact_request = services.contact_request_answer(
            recipient=request.user, request_id=request_id, action=serializer.validated_data["action"]
        )
        return Response(
            ContactRequestSerializer(selectors.request_as_seen_by(contact_request, user_id=request.user.id)).data
        )


class ContactRemoveView(APIView):
    """Remove a contact, by email (in the body: paths are written to access logs)."""

    @extend_schema(
        request=ContactRemoveSerializer,
        description="Remove a contact, for both sides; either side may do it.",
        responses={
            204: None,
            400: ERRORS[400],
            401: ERRORS[401],
            403: ERRORS[403],
            404: error_doc("`not_a_contact`: unknown email or not an accepted contact."),
        },
    )
    def post(self, request):
        serializer = ContactRemoveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.contact_remove(user=request.user, **serializer.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)
