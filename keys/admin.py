"""Key metadata for operators: counts, ages, key ids and fingerprints.

Every page here is view-only: no add, change or delete, and the public keys themselves are
shown only as fingerprints. Key material is written by its owner's browser through the API
(signatures verified) and removed by `manage.py purge_prekeys`; an admin form that could
edit it would let whoever holds an operator account substitute a key, the main active attack
on an end-to-end-encrypted messenger.

The users admin (accounts.admin.UserAdmin) gets its key columns here, by registering a subclass
in its place, as a project extends django.contrib.auth's UserAdmin: the accounts app sits below
keys and knows nothing of keys, while the operator still sees an account's fingerprint and
prekey count on one page.
"""

from django.contrib import admin
from django.db.models import Count, OuterRef, Q, Subquery
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts.admin import UserAdmin
from accounts.models import Device, User
from keys.models import IdentityKey, OneTimePreKey, SignedPreKey
from keys.selectors import fingerprint, identity_key_fingerprint, one_time_prekeys_unused_count


class ReadOnlyAdmin(admin.ModelAdmin):
    search_fields = ["user__email"]
    list_select_related = ["user"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="fingerprint")
    def key_fingerprint(self, obj) -> str:
        return fingerprint(obj.public_key)

    @admin.display(description="device", ordering="device__device_id")
    def device_number(self, obj) -> int:
        return obj.device.device_id


def _age(since) -> str:
    if since is None:
        return "-"
    return f"{(timezone.now() - since).total_seconds() / 86400:.1f} days"


@admin.register(IdentityKey)
class IdentityKeyAdmin(ReadOnlyAdmin):
    list_display = [
        "user",
        "key_fingerprint",
        "created_at",
        "unused_one_time_prekeys",
        "signed_prekey_id",
        "signed_prekey_age",
    ]
    fields = [
        "user",
        "key_fingerprint",
        "created_at",
        "unused_one_time_prekeys",
        "signed_prekey_id",
        "signed_prekey_age",
    ]
    readonly_fields = fields
    ordering = ["user__email"]

    def get_queryset(self, request):
        current = SignedPreKey.objects.filter(user=OuterRef("user"), is_current=True)
        return (
            super()
            .get_queryset(request)
            .annotate(
                unused=Count("user__one_time_prekeys", filter=Q(user__one_time_prekeys__claimed_at__isnull=True)),
                signed_id=Subquery(current.values("key_id")[:1]),
                signed_created_at=Subquery(current.values("created_at")[:1]),
            )
        )

    @admin.display(description="unused one-time prekeys", ordering="unused")
    def unused_one_time_prekeys(self, obj) -> int:
        return obj.unused

    @admin.display(description="signed prekey id")
    def signed_prekey_id(self, obj) -> int | None:
        return obj.signed_id

    @admin.display(description="signed prekey age", ordering="signed_created_at")
    def signed_prekey_age(self, obj) -> str:
        return _age(obj.signed_created_at)


@admin.register(SignedPreKey)
class SignedPreKeyAdmin(ReadOnlyAdmin):
    list_display = ["user", "device_number", "key_id", "key_fingerprint", "created_at", "retired_at"]
    list_filter = [("retired_at", admin.EmptyFieldListFilter)]
    fields = ["user", "device_number", "key_id", "key_fingerprint", "created_at", "retired_at"]
    list_select_related = ["user", "device"]
    readonly_fields = fields
    ordering = ["user__email", "-created_at"]


@admin.register(OneTimePreKey)
class OneTimePreKeyAdmin(ReadOnlyAdmin):
    list_display = ["user", "device_number", "key_id", "key_fingerprint", "created_at", "claimed_at"]
    list_filter = [("claimed_at", admin.EmptyFieldListFilter)]
    fields = ["user", "device_number", "key_id", "key_fingerprint", "created_at", "claimed_at"]
    list_select_related = ["user", "device"]
    readonly_fields = fields
    ordering = ["user__email", "id"]


# Importing accounts.admin above registered its UserAdmin, whatever the order of INSTALLED_APPS.
admin.site.unregister(User)

KEY_FIELDS = ["identity_fingerprint", "unused_one_time_prekeys", "devices"]


@admin.register(User)
class UserWithKeysAdmin(UserAdmin):
    """The users admin with the account's key metadata and devices, read-only. Devices are a
    table in a read-only field rather than an inline: nothing about them is editable here
    (users unlink their devices themselves; an operator who must cut an account off
    deactivates it), and an inline would add a formset to every save of the user form."""

    list_display = [*UserAdmin.list_display, "identity_fingerprint", "unused_one_time_prekeys"]
    readonly_fields = [*UserAdmin.readonly_fields, *KEY_FIELDS]
    fieldsets = [*UserAdmin.fieldsets, ("Keys (read-only)", {"fields": KEY_FIELDS})]

    @admin.display(description="identity key fingerprint")
    def identity_fingerprint(self, obj: User) -> str:
        return identity_key_fingerprint(user=obj) or "-"

    @admin.display(description="unused one-time prekeys")
    def unused_one_time_prekeys(self, obj: User) -> int:
        return one_time_prekeys_unused_count(user=obj)

    @admin.display(description="devices (removed ones too: numbers are never reused)")
    def devices(self, obj: User) -> str:
        unused = Count("one_time_prekeys", filter=Q(one_time_prekeys__claimed_at__isnull=True))
        rows = Device.objects.filter(user=obj).annotate(unused=unused).order_by("device_id")
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((d.device_id, d.name, d.created_at, d.last_seen_at or "-", d.removed_at or "-", d.unused) for d in rows),
        )
        head = format_html(
            "<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            "id",
            "name",
            "added",
            "last seen",
            "removed",
            "unused one-time prekeys",
        )
        return format_html("<table>{}{}</table>", head, body)
