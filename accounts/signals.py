"""Sessions end when the account changes in a way that must sign it out, whatever the path.

A password change (`set_password()` then `save()`: the admin, `manage.py changepassword`, a
shell) and a deactivation (`is_active` saved False: the admin's "Active" box, a shell) end every
session through accounts.sessions.sessions_end. `QuerySet.update()` sends no signal: code
changing these in bulk must call sessions_end itself (accounts.services.user_deactivate does).

Refresh tokens are stored hashed however a row is written (simplejwt's own `outstand()` and
`blacklist()` write the token in clear otherwise).
"""

from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from accounts.models import User
from accounts.sessions import sessions_end, token_digest


@receiver(pre_save, sender=User, dispatch_uid="accounts_note_session_ending_change")
def note_session_ending_change(sender, instance, raw=False, update_fields=None, **kwargs):
    if raw or instance._state.adding:
        return
    reasons = []
    # Django sets _password in set_password() only (a hash upgrade at login clears it first).
    if instance._password is not None and (update_fields is None or "password" in update_fields):
        reasons.append("password changed")
    if (
        not instance.is_active
        and (update_fields is None or "is_active" in update_fields)
        and User.objects.filter(pk=instance.pk, is_active=True).exists()
    ):
        reasons.append("deactivated")
    instance._sessions_end_reasons = reasons


@receiver(post_save, sender=User, dispatch_uid="accounts_end_sessions_on_change")
def end_sessions_on_change(sender, instance, created, raw=False, **kwargs):
    reasons = instance.__dict__.pop("_sessions_end_reasons", None)
    if reasons:
        sessions_end(user_id=instance.pk, reason=" and ".join(reasons))


@receiver(pre_save, sender=OutstandingToken, dispatch_uid="accounts_store_refresh_tokens_hashed")
def store_refresh_tokens_hashed(sender, instance, **kwargs):
    instance.token = token_digest(instance.token)
