"""Who may call what: a session bound to a device, or also a pending one.

A pending session (docs/PROTOCOL.md section 15: the password was right, but this client is not
a device of the account) holds no keys the account's contacts know, so it may only look at the
account (`auth/me`, the device list), link itself as a new device or start over; everything
else answers 403 `device_required`. The default permission of the API is `DeviceBound`; the few
views a pending session may call say `IsAuthenticated` themselves.
"""

from rest_framework import exceptions, permissions

from accounts.sessions import PENDING_DEVICE


class DeviceRequired(exceptions.PermissionDenied):
    default_code = "device_required"
    default_detail = "Link this client as a device of the account (or start over) first."


class DeviceBound(permissions.IsAuthenticated):
    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        if getattr(request.user, "device_id", PENDING_DEVICE) == PENDING_DEVICE:
            raise DeviceRequired()
        return True
