"""Sessions end when they should, at once: every access and refresh token issued before a
logout, a refresh-token reuse, a deactivation (any path), a password change (any path) or an
identity reset is refused from then on; tokens issued after it work, even in the same second.
Refresh tokens are never stored or shown in clear."""

import importlib
from datetime import timedelta
from http.cookies import SimpleCookie

import pytest
from django.apps import apps
from django.contrib.admin.models import LogEntry
from django.core.management import call_command
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import User
from accounts.sessions import sessions_end, token_digest, tokens_issue
from tests.helpers import CsrfClient, DeviceKeys

pytestmark = pytest.mark.django_db

LOGIN, REFRESH, LOGOUT, ME = (f"/api/v1/auth/{name}" for name in ("login", "refresh", "logout", "me"))


def copy_of(client: CsrfClient) -> CsrfClient:
    """Another holder of the same cookies (a second tab, or a thief)."""
    other = CsrfClient()
    other.cookies = SimpleCookie({name: morsel.value for name, morsel in client.cookies.items()})
    return other


def second_session(account) -> CsrfClient:
    client = CsrfClient()
    assert client.post_json(LOGIN, {"email": account.email, "password": account.password}).status_code == 200
    return client


def test_logout_refuses_every_access_token_issued_before_at_once(account):
    thief, other_session = copy_of(account.client), second_session(account)
    assert account.client.post_json(LOGOUT).status_code == 204
    assert thief.get(ME).status_code == 401
    assert thief.get(ME).json()["code"] == "session_revoked"
    assert other_session.get(ME).status_code == 401
    assert other_session.post_json(REFRESH).status_code == 401
    again = second_session(account)
    assert again.get(ME).status_code == 200


def test_a_token_issued_in_the_second_of_the_revocation_is_refused_and_one_after_it_works(account, monkeypatch):
    """JWT `iat` has whole seconds: a "valid after" timestamp could not tell these two apart."""
    frozen = timezone.now().replace(microsecond=500_000)
    monkeypatch.setattr("rest_framework_simplejwt.tokens.aware_utcnow", lambda: frozen)
    user = User.objects.get(pk=account.id)
    device = user.devices.get(device_id=1)
    before = tokens_issue(user=user, device=device)
    sessions_end(user_id=user.pk, reason="test")
    after = tokens_issue(user=user, device=device)
    for pair, expected in ((before, 401), (after, 200)):
        client = CsrfClient()
        client.cookies["access_token"] = pair.access
        assert client.get(ME).status_code == expected


def test_refresh_token_reuse_refuses_the_access_tokens_too(account):
    stolen = copy_of(account.client)
    assert account.client.post_json(REFRESH).status_code == 200
    BlacklistedToken.objects.update(blacklisted_at=timezone.now() - timedelta(minutes=5))
    assert stolen.post_json(REFRESH).status_code == 401  # reuse: every session ends
    assert account.client.get(ME).status_code == 401
    assert stolen.get(ME).status_code == 401


def test_an_old_refresh_token_cannot_keep_ending_the_new_sessions(account):
    """Whoever holds a token of an ended generation must not be able to sign the owner out
    again and again (by logout or by "reuse")."""
    old = copy_of(account.client)
    assert account.client.post_json(LOGOUT).status_code == 204
    fresh = second_session(account)
    BlacklistedToken.objects.update(blacklisted_at=timezone.now() - timedelta(minutes=5))
    assert old.post_json(REFRESH).status_code == 401
    assert old.post_json(LOGOUT).status_code == 204
    assert fresh.get(ME).status_code == 200
    assert fresh.post_json(REFRESH).status_code == 200


def test_deactivation_by_any_save_ends_the_sessions_for_good(account):
    user = User.objects.get(pk=account.id)
    user.is_active = False
    user.save()
    user.is_active = True  # reactivated: the old tokens stay dead
    user.save()
    assert account.client.get(ME).status_code == 401
    assert account.client.post_json(REFRESH).status_code == 401


def test_unticking_active_in_the_admin_ends_the_sessions(account, client, django_capture_on_commit_callbacks):
    client.force_login(User.objects.create_superuser("operator@example.test", "an operator password 123"))
    form = {"email": account.email, "is_active": "", "is_staff": "", "is_superuser": ""}
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(f"/admin/accounts/user/{account.id}/change/", form)
    assert response.status_code == 302
    assert not User.objects.get(pk=account.id).is_active
    assert callbacks  # the session.revoked push
    User.objects.filter(pk=account.id).update(is_active=True)
    assert account.client.get(ME).status_code == 401


def test_saving_an_inactive_user_again_or_other_fields_ends_nothing(account):
    user = User.objects.get(pk=account.id)
    user.last_login = timezone.now()
    user.save()
    user.save(update_fields=["last_login"])
    assert account.client.get(ME).status_code == 200


def test_set_password_ends_the_sessions(account):
    user = User.objects.get(pk=account.id)
    user.set_password("a brand new passphrase")
    user.save()
    assert account.client.get(ME).status_code == 401
    assert account.client.post_json(REFRESH).status_code == 401


def test_changepassword_command_ends_the_sessions(account, monkeypatch):
    monkeypatch.setattr(
        "django.contrib.auth.management.commands.changepassword.Command._get_pass",
        lambda self, prompt="": "a brand new passphrase",
    )
    call_command("changepassword", account.email, stdout=None)
    assert account.client.get(ME).status_code == 401


def test_a_hash_upgrade_at_login_is_not_a_password_change(account, monkeypatch):
    """Django re-hashes a password at login when the hasher's parameters changed (pepper
    rotation, more iterations): the same password, so no session may end."""
    monkeypatch.setattr("tests.helpers.FastPepperedPBKDF2PasswordHasher.iterations", 1001)
    before = User.objects.get(pk=account.id).password
    second_session(account)
    assert User.objects.get(pk=account.id).password != before
    assert account.client.get(ME).status_code == 200


def test_identity_reset_ends_old_sessions_keeps_the_new_device_and_is_in_the_admin_log(account, monkeypatch):
    frozen = timezone.now().replace(microsecond=100_000)
    monkeypatch.setattr("rest_framework_simplejwt.tokens.aware_utcnow", lambda: frozen)
    old_browser = second_session(account)
    payload = {"password": account.password, **DeviceKeys().registration_keys(5)}
    response = account.client.put_json("/api/v1/keys/identity", payload)  # in the same second
    assert response.status_code == 200
    assert account.client.get(ME).status_code == 200
    assert old_browser.get(ME).status_code == 401
    entry = LogEntry.objects.get(object_id=str(account.id))
    assert (entry.user_id, entry.get_change_message()) == (account.id, "identity key reset")
    assert entry.content_type.model_class() is User


def test_a_wrong_password_identity_reset_ends_nothing_and_logs_nothing(account):
    payload = {"password": "not the password", **DeviceKeys().registration_keys(5)}
    assert account.client.put_json("/api/v1/keys/identity", payload).status_code == 403
    assert account.client.get(ME).status_code == 200
    assert not LogEntry.objects.exists()


# --- refresh tokens at rest ------------------------------------------------------------------------


def test_refresh_tokens_are_stored_as_digests_only(account):
    raw = account.client.cookies["refresh_token"].value
    row = OutstandingToken.objects.get(user_id=account.id)
    assert row.token == token_digest(raw)
    assert raw not in row.token
    # simplejwt's own writers are covered too.
    from rest_framework_simplejwt.tokens import RefreshToken

    token = RefreshToken.for_user(User.objects.get(pk=account.id))
    assert OutstandingToken.objects.get(jti=token["jti"]).token == token_digest(str(token))


def test_the_migration_hashes_tokens_stored_in_clear(account):
    raw = account.client.cookies["refresh_token"].value
    OutstandingToken.objects.filter(user_id=account.id).update(token=raw)  # as an older version stored it
    migration = importlib.import_module("accounts.migrations.0002_session_generation_and_hashed_refresh_tokens")
    migration.hash_stored_refresh_tokens(apps, None)
    migration.hash_stored_refresh_tokens(apps, None)  # idempotent
    assert OutstandingToken.objects.get(user_id=account.id).token == token_digest(raw)
    assert account.client.post_json(REFRESH).status_code == 200  # rotation works by jti


def test_flushexpiredtokens_still_removes_expired_rows(account):
    OutstandingToken.objects.update(expires_at=timezone.now() - timedelta(days=1))
    call_command("flushexpiredtokens")
    assert not OutstandingToken.objects.exists()


def test_the_admin_never_shows_a_refresh_token(account, client):
    client.force_login(User.objects.create_superuser("operator@example.test", "an operator password 123"))
    raw = account.client.cookies["refresh_token"].value
    row = OutstandingToken.objects.get(user_id=account.id)
    listing = client.get("/admin/token_blacklist/outstandingtoken/")
    detail = client.get(f"/admin/token_blacklist/outstandingtoken/{row.pk}/change/")
    assert listing.status_code == detail.status_code == 200
    for page in (listing.content.decode(), detail.content.decode()):
        assert row.jti in page
        assert raw not in page
        assert row.token not in page  # not even the digest
    assert client.get("/admin/token_blacklist/blacklistedtoken/").status_code == 404


def test_a_revoked_access_cookie_does_not_stop_signing_in_again(account):
    old_browser = copy_of(account.client)
    sessions_end(user_id=account.id, reason="test")
    assert old_browser.get(ME).status_code == 401
    response = old_browser.post_json(LOGIN, {"email": account.email, "password": account.password})
    assert response.status_code == 200
    assert old_browser.get(ME).status_code == 200


def test_an_identity_replaced_by_any_path_ends_the_sessions_and_is_logged(account):
    from keys.services import device_keys_set

    user = User.objects.get(pk=account.id)
    device_keys_set(user=user, **DeviceKeys().registration_keys(3))
    assert account.client.get(ME).status_code == 401
    assert LogEntry.objects.get(object_id=str(account.id)).get_change_message() == "identity key reset"


def test_registration_logs_no_identity_reset(account):
    assert not LogEntry.objects.exists()
