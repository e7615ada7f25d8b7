"""Request and response shapes of the contacts API."""

from rest_framework import serializers

from accounts.models import normalize_email
from contacts.models import ContactRequest
from contacts.services import ACTIONS


class ContactRequestCreateSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254, help_text="The account to ask.")

    def validate_email(self, value: str) -> str:
        return normalize_email(value)


class ContactRemoveSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254, help_text="The contact to remove.")

    def validate_email(self, value: str) -> str:
        return normalize_email(value)


class ContactRequestAnswerSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=ACTIONS)


class ContactRequestSerializer(serializers.Serializer):
    """A request from the caller's side (`contacts.selectors.RequestSummary`)."""

    id = serializers.IntegerField()
    email = serializers.EmailField(help_text="The other user.")
    status = serializers.ChoiceField(
        choices=ContactRequest.Status.choices,
        help_text="To its requester a rejected request always reads `pending`.",
    )
    created_at = serializers.DateTimeField()
    responded_at = serializers.DateTimeField(allow_null=True)


class ContactRequestItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField(help_text="The other user.")
    created_at = serializers.DateTimeField()


class PendingRequestsSerializer(serializers.Serializer):
    incoming = ContactRequestItemSerializer(many=True, help_text="Waiting for your answer.")
    outgoing = ContactRequestItemSerializer(many=True, help_text="Sent by you, not accepted yet.")


class ContactSerializer(serializers.Serializer):
    email = serializers.EmailField()
    since = serializers.DateTimeField(help_text="When the request was accepted.")
