"""A member's device unlinked (accounts.devices.devices_removed, in the removing transaction):
their groups get a new epoch, so every sender replaces its sender key before its next message
(the removed device holds the current one)."""

from django.dispatch import receiver

from accounts.devices import devices_removed
from groups.services import member_devices_changed


@receiver(devices_removed, dispatch_uid="groups_epoch_of_removed_devices")
def _devices_removed(sender, *, user_id: int, device_ids: list[int], **kwargs) -> None:
    member_devices_changed(user_id=user_id)
