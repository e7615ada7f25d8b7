"""Request and response shapes of the REST fallback (`/api/v1/messages/`). The socket frames
carry the same fields (see chat.events)."""

from rest_framework import serializers

from chat.errors import InvalidFrame
from chat.models import Envelope
from chat.validation import MAX_IDS_PER_FRAME, ids_parse
from messenger.validation import MAX_DATABASE_ID


class SendSerializer(serializers.Serializer):
    client_id = serializers.UUIDField(help_text="Chosen by the sender's client; a resend reuses it.")
    to = serializers.EmailField(max_length=254, help_text="Email of an accepted contact.")
    kind = serializers.ChoiceField(choices=Envelope.Kind.choices, help_text="`prekey` for a first message.")
    body = serializers.CharField(trim_whitespace=False, help_text="Ciphertext, opaque to the server (max 64 KiB).")


class CopySerializer(serializers.Serializer):
    device = serializers.IntegerField(help_text="The device this copy is encrypted for.")
    kind = serializers.ChoiceField(choices=Envelope.Kind.choices)
    body = serializers.CharField(trim_whitespace=False, help_text="Ciphertext for that device (max 64 KiB).")


class SendCopiesSerializer(serializers.Serializer):
    """Documentation of a version-2 send (docs/PROTOCOL.md section 17.1); the view checks it
    with chat.services.send_request_parse, the socket frame's rules."""

    client_id = serializers.UUIDField(help_text="Chosen by the sender's client; a resend reuses it.")
    to = serializers.EmailField(max_length=254, help_text="Email of an accepted contact.")
    copies = CopySerializer(many=True, help_text="One copy per active device of the recipient.")
    own = CopySerializer(many=True, required=False, help_text="One copy per other active device of the sender.")


class SentSerializer(serializers.Serializer):
    client_id = serializers.UUIDField()
    id = serializers.IntegerField(help_text="Server id; envelopes are delivered in id order.")


class MessageSerializer(serializers.Serializer):
    type = serializers.CharField(help_text='Always "message".')
    id = serializers.IntegerField()
    client_id = serializers.UUIDField()
    # `from` is a Python keyword: declared below.
    kind = serializers.ChoiceField(choices=Envelope.Kind.choices)
    body = serializers.CharField()
    sent_at = serializers.DateTimeField()

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.EmailField(help_text="The sender.")
        return fields


class PendingQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(
        min_value=0, max_value=MAX_DATABASE_ID, default=0, help_text="Only envelopes with a larger id."
    )
    limit = serializers.IntegerField(min_value=1, max_value=500, default=100)


class PendingSerializer(serializers.Serializer):
    messages = MessageSerializer(many=True)
    has_more = serializers.BooleanField(help_text="Ask again with after=<last id>.")


class EnvelopeIdsField(serializers.ListField):
    """Envelope ids in a JSON body, checked by the socket frames' `ids_parse` (the same types,
    bounds and codes; DRF's IntegerField would also take "5" and 5.0). The child field only
    describes the items for the schema."""

    def __init__(self, **kwargs):
        child = serializers.IntegerField(min_value=1, max_value=MAX_DATABASE_ID)
        super().__init__(child=child, min_length=1, max_length=MAX_IDS_PER_FRAME, **kwargs)

    def to_internal_value(self, data):
        try:
            return ids_parse(data)
        except InvalidFrame as error:
            raise serializers.ValidationError(error.detail, code=error.code) from None


class IdsSerializer(serializers.Serializer):
    ids = EnvelopeIdsField()


class ReceiptSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="The ids this call marked (the others were not yours, or were already marked).",
    )


class ReceiptsQuerySerializer(serializers.Serializer):
    ids = serializers.CharField(
        max_length=MAX_IDS_PER_FRAME * 21,
        help_text=f"Comma-separated ids of envelopes you sent (1 to {MAX_IDS_PER_FRAME}).",
    )

    def validate_ids(self, value: str) -> list[int]:
        try:
            return ids_parse([int(part) for part in value.split(",")])
        except ValueError:
            raise serializers.ValidationError("ids must be comma-separated positive integers.") from None
        except InvalidFrame as error:
            raise serializers.ValidationError(error.detail, code=error.code) from None


class ReceiptsSerializer(serializers.Serializer):
    type = serializers.CharField(help_text='Always "receipts".')
    delivered = serializers.ListField(child=serializers.IntegerField(), help_text="Delivered, not read yet.")
    read = serializers.ListField(child=serializers.IntegerField())
    unknown = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="Not an envelope you sent, or an undelivered one deleted at the end of retention.",
    )


class GroupKeySerializer(serializers.Serializer):
    email = serializers.EmailField(help_text="A member.")
    device = serializers.IntegerField(help_text="One of the member's devices.")
    kind = serializers.ChoiceField(choices=Envelope.Kind.choices)
    body = serializers.CharField(help_text="A pairwise envelope carrying your sender key (max 1,024 characters).")


class GroupSendSerializer(serializers.Serializer):
    """Documentation of a group message (docs/PROTOCOL.md section 23); the view checks it with
    chat.group_messages.group_send_parse, the socket frame's rules."""

    client_id = serializers.UUIDField(help_text="Chosen by the sender's client; a resend reuses it.")
    group = serializers.UUIDField(help_text="The group's id.")
    epoch = serializers.IntegerField(help_text="The group's epoch the sender knows.")
    body = serializers.CharField(help_text="The group ciphertext, stored once (max 64 KiB).")
    keys = GroupKeySerializer(many=True, required=False, help_text="Sender key entries for devices that need one.")


class GroupReceiptSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The message id.")
    delivered = serializers.IntegerField(help_text="Members it was delivered to.")
    read = serializers.IntegerField(help_text="Members who read it.")
    of = serializers.IntegerField(help_text="Members it was sent to.")


class GroupReceiptsSerializer(serializers.Serializer):
    type = serializers.CharField(help_text='Always "group_receipts".')
    receipts = GroupReceiptSerializer(many=True)
