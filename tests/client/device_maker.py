"""Makes another device of an account in a test server's database: run as
``python -m tests.client.device_maker`` with that server's environment (tests/client/conftest.py),
the device as JSON on standard input ``{email, name, signed_prekey, one_time_prekeys}`` (public keys,
the signed prekey signed by the account's identity key); prints the new device's number.

What linking (docs/PROTOCOL.md section 18; helpers.py ``linked`` runs the real flow) ends with,
the way contacts/tests/helpers.py ``add_device`` does it in-process: the client tests' server is
another process with its own database, so this runs beside it.
"""

import json
import sys

import django


def main() -> None:
    django.setup()
    from accounts.devices import device_create
    from accounts.models import User
    from keys.models import SignedPreKey
    from keys.services import one_time_prekeys_add

    request = json.load(sys.stdin)
    user = User.objects.get(email=request["email"])
    device = device_create(user=user, name=request["name"])
    SignedPreKey.objects.create(user=user, device=device, **request["signed_prekey"])
    one_time_prekeys_add(user=user, device_id=device.device_id, one_time_prekeys=request["one_time_prekeys"])
    print(device.device_id)


if __name__ == "__main__":
    main()
