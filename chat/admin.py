"""Operators see envelope metadata (who, when, how big) and never a body: the body is
ciphertext, but listing it would still invite copying it around. Envelopes are not editable;
retention is `manage.py purge_messages`, not hand deletion."""

from django.contrib import admin

from chat.models import Envelope


@admin.register(Envelope)
class EnvelopeAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "sender",
        "sender_device",
        "recipient",
        "recipient_device",
        "kind",
        "size",
        "created_at",
        "delivered_at",
        "read_at",
    ]
    list_filter = ["kind", ("delivered_at", admin.EmptyFieldListFilter), ("read_at", admin.EmptyFieldListFilter)]
    search_fields = ["sender__email", "recipient__email"]
    list_select_related = ["sender", "recipient"]
    fields = [
        "id",
        "message_id",
        "client_id",
        "sender",
        "sender_device",
        "recipient",
        "recipient_device",
        "peer",
        "kind",
        "size",
        "created_at",
        "delivered_at",
        "read_at",
    ]
    readonly_fields = fields
    ordering = ["-id"]
    show_full_result_count = False

    def get_queryset(self, request):
        return super().get_queryset(request).defer("body")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
