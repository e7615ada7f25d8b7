"""Operators moderate metadata; key material is shown as fingerprints and never editable."""

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts.models import User
from accounts.services import user_deactivate
from keys.selectors import identity_key_fingerprint, one_time_prekeys_unused_count


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = [
        "email",
        "date_joined",
        "last_login",
        "is_active",
        "identity_fingerprint",
        "unused_one_time_prekeys",
    ]
    list_filter = ["is_active", "is_staff"]
    search_fields = ["email"]
    readonly_fields = ["date_joined", "last_login", "identity_fingerprint", "unused_one_time_prekeys"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Status", {"fields": ["is_active", "is_staff", "is_superuser", "date_joined", "last_login"]}),
        ("Keys (read-only)", {"fields": ["identity_fingerprint", "unused_one_time_prekeys"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]
    actions = ["deactivate_ban"]

    @admin.action(description="Deactivate (ban) selected users", permissions=["change"])
    def deactivate_ban(self, request, queryset):
        """Deactivates through accounts.services.user_deactivate (sessions revoked, sockets
        closed). The acting operator is never banned."""
        users = list(queryset.exclude(pk=request.user.pk))
        for user in users:
            user_deactivate(user_id=user.pk)
            self.log_change(request, user, "Deactivated (ban): sessions revoked, sockets closed.")
        if len(users) < queryset.count():
            self.message_user(request, "You cannot ban your own account; it was left active.", messages.WARNING)
        self.message_user(request, f"Deactivated {len(users)} account(s); their sessions were revoked.")

    @admin.display(description="identity key fingerprint")
    def identity_fingerprint(self, obj: User) -> str:
        return identity_key_fingerprint(user=obj) or "-"

    @admin.display(description="unused one-time prekeys")
    def unused_one_time_prekeys(self, obj: User) -> int:
        return one_time_prekeys_unused_count(user=obj)
