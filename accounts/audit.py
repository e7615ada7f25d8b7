"""Changes to an account recorded in the admin's history (django.contrib.admin's LogEntry), so
an operator reviewing a user sees them next to what operators did."""

from django.contrib.admin.models import CHANGE, LogEntry

from accounts.models import User


def account_change_log(*, user: User, actor_id: int, message: str) -> None:
    """One history line on `user`'s admin page: `message`, done by the account `actor_id`."""
    LogEntry.objects.log_actions(
        user_id=actor_id, queryset=[user], action_flag=CHANGE, change_message=message, single_object=True
    )
