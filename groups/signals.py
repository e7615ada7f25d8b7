"""A member's device unlinked (accounts.devices.devices_removed, in the removing transaction):
their groups get a new epoch, so every sender replaces its sender key before its next message
(the removed device holds the current one). An account deleted (pre_delete, in the deleting
transaction): it leaves its groups first (groups.services.account_deleted)."""

from django.db.models.signals import pre_delete
from django.dispatch import receiver

from accounts.devices import devices_removed
from accounts.models import User
from groups.services import account_deleted, member_devices_changed


@receiver(devices_removed, dispatch_uid="groups_epoch_of_removed_devices")
def _devices_removed(sender, *, user_id: int, device_ids: list[int], **kwargs) -> None:
    member_devices_changed(user_id=user_id)


@receiver(pre_delete, sender=User, dispatch_uid="groups_leave_on_account_deleted")
def _account_deleted(sender, *, instance: User, **kwargs) -> None:
    account_deleted(user=instance)
