"""Close the sockets of a user who is deactivated, however that happens.

The ban admin action publishes `session.revoked` itself; this receiver also covers an
operator unticking "active" in the user form, a shell session, or any other `save()`.
Without it a deactivated user's open socket would stay open (able to receive, though no
longer to send: envelope_send checks the sender) until its access token expires.
(`QuerySet.update()` sends no signal: code deactivating users in bulk must call
`session_revoked_publish` itself.)
"""

from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver

from chat.events import session_revoked_publish


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="chat_close_sockets_of_inactive_user")
def close_sockets_of_inactive_user(sender, instance, created, update_fields=None, **kwargs):
    if created or instance.is_active:
        return
    if update_fields is not None and "is_active" not in update_fields:
        return
    session_revoked_publish(user_id=instance.pk)
