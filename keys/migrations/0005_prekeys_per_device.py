"""Prekeys belong to a device (docs/PROTOCOL.md section 14). Every account that has keys
becomes an account with one device, number 1, holding the prekeys it had: a version-1 client's
stored state is that device, and its sessions keep working."""

import django.db.models.deletion
from django.db import migrations, models


def devices_for_existing_accounts(apps, schema_editor):
    IdentityKey = apps.get_model("keys", "IdentityKey")
    Device = apps.get_model("accounts", "Device")
    SignedPreKey = apps.get_model("keys", "SignedPreKey")
    OneTimePreKey = apps.get_model("keys", "OneTimePreKey")
    for identity in IdentityKey.objects.all().only("user_id", "created_at").iterator(chunk_size=1000):
        device, _ = Device.objects.get_or_create(
            user_id=identity.user_id, device_id=1, defaults={"name": "Device", "created_at": identity.created_at}
        )
        SignedPreKey.objects.filter(user_id=identity.user_id).update(device=device)
        OneTimePreKey.objects.filter(user_id=identity.user_id).update(device=device)
    # Prekeys without an identity key cannot exist through the API; none may stay ownerless.
    SignedPreKey.objects.filter(device__isnull=True).delete()
    OneTimePreKey.objects.filter(device__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_device"),
        ("keys", "0004_key_ids_start_at_one"),
    ]

    operations = [
        migrations.AddField(
            model_name="signedprekey",
            name="device",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="signed_prekeys",
                to="accounts.device",
            ),
        ),
        migrations.AddField(
            model_name="onetimeprekey",
            name="device",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="one_time_prekeys",
                to="accounts.device",
            ),
        ),
        migrations.RunPython(devices_for_existing_accounts, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="signedprekey",
            name="device",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="signed_prekeys", to="accounts.device"
            ),
        ),
        migrations.AlterField(
            model_name="onetimeprekey",
            name="device",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="one_time_prekeys", to="accounts.device"
            ),
        ),
        migrations.RemoveConstraint(model_name="signedprekey", name="keys_signedprekey_user_key_id_unique"),
        migrations.RemoveConstraint(model_name="signedprekey", name="keys_signedprekey_one_current"),
        migrations.RemoveConstraint(model_name="onetimeprekey", name="keys_onetimeprekey_user_key_id_unique"),
        migrations.RemoveIndex(model_name="onetimeprekey", name="keys_otpk_unclaimed_idx"),
        migrations.AddConstraint(
            model_name="signedprekey",
            constraint=models.UniqueConstraint(
                fields=("device", "key_id"), name="keys_signedprekey_device_key_id_unique"
            ),
        ),
        migrations.AddConstraint(
            model_name="signedprekey",
            constraint=models.UniqueConstraint(
                fields=("device", "is_current"), name="keys_signedprekey_one_current_per_device"
            ),
        ),
        migrations.AddConstraint(
            model_name="onetimeprekey",
            constraint=models.UniqueConstraint(
                fields=("device", "key_id"), name="keys_onetimeprekey_device_key_id_unique"
            ),
        ),
        migrations.AddIndex(
            model_name="onetimeprekey",
            index=models.Index(fields=["device", "claimed_at", "id"], name="keys_otpk_device_unclaimed_idx"),
        ),
    ]
