"""Operators moderate metadata; key material is shown as fingerprints and never editable.

An operator cannot take an account over: there is no form to set a user's password (a new
password would let the operator sign in as the user, and an identity reset from there would
put the operator's keys in front of every contact), refresh tokens are neither stored nor shown
in clear, and every identity reset appears in the user's history. The admin's own sign-in is
throttled like the API's (accounts.backends). The users list shows key columns too: keys.admin
registers this admin again with them.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import BaseUserCreationForm
from django.core.exceptions import ValidationError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import User, email_for_new_account, normalize_email
from accounts.services import user_deactivate
from messenger.errors import RateLimited


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin sign-in, with the API's limits (the same buckets, in the backend) and a clear
    message instead of an error page when one is reached."""

    def clean(self):
        try:
            return super().clean()
        except RateLimited as limited:
            raise ValidationError(
                "Too many sign-in attempts; try again in %(seconds)s seconds.",
                code="rate_limited",
                params={"seconds": limited.retry_after},
            ) from None


admin.site.login_form = ThrottledAdminAuthenticationForm


class NewEmailRule:
    """An email typed in the admin (a new account, or a changed address) follows the rule for new
    accounts (`email_for_new_account`: plain ASCII), as registration does: otherwise an operator
    could create `alice@example.org` with a Cyrillic `a` (U+0430) next to the real one. An unchanged
    address of an older account is left as it is."""

    def clean_email(self):
        email = self.cleaned_data["email"]
        if self.instance.pk is not None and normalize_email(email) == self.instance.email:
            return email
        try:
            return email_for_new_account(email)
        except ValueError as error:
            raise ValidationError(str(error), code="non_ascii_email") from None


class UserChangeForm(NewEmailRule, forms.ModelForm):
    """Django's UserChangeForm without its password field (and the link to set one)."""

    class Meta:
        model = User
        fields = ["email", "is_active", "is_staff", "is_superuser"]


class UserAddForm(NewEmailRule, BaseUserCreationForm):
    class Meta:
        model = User
        fields = ["email"]


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "date_joined", "last_login", "is_active"]
    list_filter = ["is_active", "is_staff"]
    search_fields = ["email"]
    readonly_fields = ["date_joined", "last_login"]
    form = UserChangeForm
    add_form = UserAddForm
    fieldsets = [
        (None, {"fields": ["email"]}),
        ("Status", {"fields": ["is_active", "is_staff", "is_superuser", "date_joined", "last_login"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]
    actions = ["deactivate_ban"]

    def get_urls(self):
        # Without Django's "<id>/password/" view: operators cannot set a user's password.
        return [url for url in super().get_urls() if url.name != "auth_user_password_change"]

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


# simplejwt's admin shows each refresh token in full on its change page: replaced by a list of
# sessions (jti, user, dates) with nothing to copy.
for model in (OutstandingToken, BlacklistedToken):
    if admin.site.is_registered(model):
        admin.site.unregister(model)


@admin.register(OutstandingToken)
class RefreshTokenAdmin(admin.ModelAdmin):
    list_display = ["jti", "user", "created_at", "expires_at", "revoked"]
    search_fields = ["user__email", "jti"]
    fields = ["jti", "user", "created_at", "expires_at", "revoked"]
    readonly_fields = fields
    list_select_related = ["user", "blacklistedtoken"]
    actions = None

    @admin.display(boolean=True, description="revoked")
    def revoked(self, obj: OutstandingToken) -> bool:
        return hasattr(obj, "blacklistedtoken")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
