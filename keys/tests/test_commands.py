"""manage.py audit_prekeys and purge_prekeys on a seeded database: output, exit status."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from contacts.tests.helpers import add_device, make_user
from keys.management.commands.audit_prekeys import Command as AuditCommand
from keys.models import OneTimePreKey, SignedPreKey
from keys.services import device_unlink, one_time_prekey_claim
from tests.helpers import DeviceKeys, b64

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[str, int]:
    out = StringIO()
    try:
        call_command(*args, stdout=out, stderr=StringIO())
    except CommandError as error:
        return out.getvalue(), error.returncode
    return out.getvalue(), 0


@pytest.fixture
def seeded(settings):
    """healthy: fine; low: 3 unused; empty: none left; stale: signed prekey 45 days old;
    forged: a stored signature that does not verify."""
    settings.SIGNED_PREKEY_MAX_AGE_DAYS = 30
    users = {
        "healthy": make_user("healthy@example.test", one_time_count=50),
        "low": make_user("low@example.test", one_time_count=3),
        "empty": make_user("empty@example.test", one_time_count=1),
        "stale": make_user("stale@example.test", one_time_count=20),
        "forged": make_user("forged@example.test", one_time_count=20),
    }
    one_time_prekey_claim(device_pk=users["empty"].devices.get(device_id=1).pk)
    SignedPreKey.objects.filter(user=users["stale"]).update(created_at=timezone.now() - timedelta(days=45))
    SignedPreKey.objects.filter(user=users["forged"]).update(signature=b64(DeviceKeys().identity.sign(b"x")))
    return users


def test_audit_table_lists_every_account_its_problems_and_a_summary(seeded):
    out, status = run("audit_prekeys")
    lines = out.splitlines()
    assert lines[0].split() == ["EMAIL", "DEVICE", "UNUSED", "SPK", "ID", "SPK", "AGE", "PROBLEMS"]
    rows = {line.split()[0]: line for line in lines[1:-1]}
    assert list(rows) == sorted(f"{name}@example.test" for name in seeded)
    assert rows["healthy@example.test"].split()[1:] == ["1", "50", "1", "0.0d", "ok"]
    assert rows["low@example.test"].endswith("one_time_prekeys_low")
    assert rows["empty@example.test"].split()[2] == "0"
    assert rows["empty@example.test"].endswith("no_one_time_prekeys")
    assert "45.0d" in rows["stale@example.test"]
    assert rows["stale@example.test"].endswith("signed_prekey_stale")
    assert rows["forged@example.test"].endswith("bad_signature")
    assert lines[-1] == (
        "5 accounts (5 devices) audited, 4 with problems (1 no_one_time_prekeys, 1 one_time_prekeys_low, "
        "1 signed_prekey_stale, 1 bad_signature)."
    )
    assert status == 1


def test_audit_exits_0_when_every_account_is_healthy(seeded):
    out, status = run("audit_prekeys", "--user", "HEALTHY@example.test")
    assert status == 0
    assert out.splitlines()[-1] == "1 accounts (1 devices) audited, 0 with problems."


def test_audit_exit_status_from_the_command_line_is_1_on_problems(seeded):
    with pytest.raises(SystemExit) as exit_info:
        AuditCommand(stdout=StringIO(), stderr=StringIO()).run_from_argv(["manage.py", "audit_prekeys"])
    assert exit_info.value.code == 1


def test_audit_json_has_every_account_and_the_summary(seeded):
    out, status = run("audit_prekeys", "--format", "json")
    report = json.loads(out)
    assert status == 1
    by_email = {device["email"]: device for device in report["devices"]}
    assert by_email["low@example.test"]["unused_one_time_prekeys"] == 3
    assert by_email["low@example.test"]["problems"] == ["one_time_prekeys_low"]
    assert by_email["healthy@example.test"]["signed_prekey_id"] == 1
    assert report["summary"]["users"] == 5
    assert report["summary"]["users_with_problems"] == 4
    assert report["summary"]["problems"]["bad_signature"] == 1
    assert report["summary"]["low_threshold"] == 10


def test_audit_of_one_user(seeded):
    out, status = run("audit_prekeys", "--user", "stale@example.test", "--format", "json")
    assert [device["email"] for device in json.loads(out)["devices"]] == ["stale@example.test"]
    assert status == 1


def test_audit_has_a_line_per_active_device_and_leaves_removed_ones_out(seeded):
    user = seeded["healthy"]
    second = add_device(user, one_time_count=2)
    removed = add_device(user, one_time_count=20)
    device_unlink(user=user, device_id=removed.device_id)
    out, status = run("audit_prekeys", "--user", user.email, "--format", "json")
    report = json.loads(out)
    assert [(d["device_id"], d["unused_one_time_prekeys"], d["problems"]) for d in report["devices"]] == [
        (1, 50, []),
        (second.device_id, 2, ["one_time_prekeys_low"]),
    ]
    assert report["summary"]["users"] == 1
    assert report["summary"]["devices"] == 2
    assert report["summary"]["devices_with_problems"] == 1
    assert status == 1


def test_audit_of_an_unknown_user_is_an_error(seeded):
    with pytest.raises(CommandError, match="No active account"):
        call_command("audit_prekeys", "--user", "nobody@example.test", stdout=StringIO())


def test_purge_dry_run_counts_and_deletes_nothing(seeded):
    long_ago = timezone.now() - timedelta(days=40)
    OneTimePreKey.objects.filter(user=seeded["healthy"], key_id__lte=5).update(claimed_at=long_ago)
    out, status = run("purge_prekeys", "--older-than", "30", "--dry-run")
    assert status == 0
    assert out.strip() == ("Would delete 5 claimed one-time prekeys and 0 retired signed prekeys older than 30 days.")
    assert OneTimePreKey.objects.filter(user=seeded["healthy"]).count() == 50


def test_purge_deletes_claimed_and_retired_keys_older_than_the_cutoff(seeded):
    long_ago = timezone.now() - timedelta(days=40)
    OneTimePreKey.objects.filter(user=seeded["healthy"], key_id__lte=5).update(claimed_at=long_ago)
    user = seeded["healthy"]
    SignedPreKey.objects.filter(user=user).update(is_current=None, retired_at=long_ago)
    SignedPreKey.objects.create(user=user, device=user.devices.get(), key_id=2, public_key="k", signature="s")
    out, _ = run("purge_prekeys", "--older-than", "30")
    assert out.strip() == "Deleted 5 claimed one-time prekeys and 1 retired signed prekeys older than 30 days."
    # The recently claimed key of `empty` is younger than 30 days: kept.
    assert OneTimePreKey.objects.filter(claimed_at__isnull=False).count() == 1
    assert list(SignedPreKey.objects.filter(user=user).values_list("key_id", flat=True)) == [2]


def test_purge_needs_older_than():
    with pytest.raises(CommandError, match="--older-than"):
        call_command("purge_prekeys", stdout=StringIO(), stderr=StringIO())
