"""The migration to devices (docs/PROTOCOL.md section 19): every account that has keys becomes
an account with device 1 holding the prekeys it had; an account without keys gets no device."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("accounts", "0002_session_generation_and_hashed_refresh_tokens"), ("keys", "0004_key_ids_start_at_one")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_existing_accounts_get_device_1_with_their_keys():
    old = migrate(BEFORE)
    try:
        User = old.get_model("accounts", "User")
        alice = User.objects.create(email="alice@example.test", password="x")
        User.objects.create(email="operator@example.test", password="x")
        old.get_model("keys", "IdentityKey").objects.create(user=alice, public_key="ik")
        old.get_model("keys", "SignedPreKey").objects.create(user=alice, key_id=3, public_key="spk", signature="s")
        OneTimePreKey = old.get_model("keys", "OneTimePreKey")
        OneTimePreKey.objects.bulk_create([OneTimePreKey(user=alice, key_id=i, public_key=f"k{i}") for i in (1, 2)])
    finally:
        new = migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    Device = new.get_model("accounts", "Device")
    device = Device.objects.get(user__email="alice@example.test")
    assert (device.device_id, device.removed_at) == (1, None)
    assert not Device.objects.filter(user__email="operator@example.test").exists()
    assert list(new.get_model("keys", "SignedPreKey").objects.values_list("device_id", "key_id")) == [(device.pk, 3)]
    otpks = new.get_model("keys", "OneTimePreKey").objects.order_by("key_id").values_list("device_id", "key_id")
    assert list(otpks) == [(device.pk, 1), (device.pk, 2)]
