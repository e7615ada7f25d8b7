"""Operators see who asked whom and when (metadata only) and may delete an abusive request;
they cannot create or rewrite one: every field is read-only."""

from django.contrib import admin

from contacts.models import ContactRequest


@admin.register(ContactRequest)
class ContactRequestAdmin(admin.ModelAdmin):
    list_display = ["id", "requester", "recipient", "status", "created_at", "responded_at"]
    list_filter = ["status"]
    search_fields = ["requester__email", "recipient__email"]
    date_hierarchy = "created_at"
    list_select_related = ["requester", "recipient"]
    fields = ["requester", "recipient", "status", "created_at", "responded_at"]
    readonly_fields = fields
    ordering = ["-created_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # View only; deletion stays available to operators with the delete permission.
        return False
