"""The chat app's receivers of other apps' signals."""

from django.dispatch import receiver

from accounts.devices import devices_removed
from chat.services import copies_of_removed_devices_delete


@receiver(devices_removed, dispatch_uid="chat_copies_of_removed_devices")
def _copies_of_removed_devices(sender, *, user_id: int, device_ids: list[int], **kwargs) -> None:
    copies_of_removed_devices_delete(user_id=user_id, device_ids=device_ids)
