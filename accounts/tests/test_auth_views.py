"""Login, refresh rotation, logout, /me, cookies and CSRF."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import User
from accounts.sessions import token_digest
from tests.helpers import CsrfClient, register_account

pytestmark = pytest.mark.django_db

LOGIN, REFRESH, LOGOUT, ME = (f"/api/v1/auth/{name}" for name in ("login", "refresh", "logout", "me"))


def login(client, account):
    return client.post_json(LOGIN, {"email": account.email, "password": account.password})


def test_login_sets_httponly_strict_cookies_with_refresh_scoped_to_auth_routes(settings, make_account, client_csrf):
    settings.AUTH_COOKIE_SECURE = True
    account = make_account(login=False)
    response = login(client_csrf, account)
    assert response.status_code == 200
    assert response.json()["email"] == account.email
    access, refresh = response.cookies["access_token"], response.cookies["refresh_token"]
    for cookie in (access, refresh):
        assert cookie["httponly"] is True
        assert cookie["samesite"] == "Strict"
        assert cookie["secure"] is True
    assert access["path"] == "/"
    assert refresh["path"] == "/api/v1/auth/"
    assert "access" not in response.json()
    assert "refresh" not in response.json()


def test_secure_flag_follows_the_setting(settings, make_account, client_csrf):
    settings.AUTH_COOKIE_SECURE = False
    response = login(client_csrf, make_account(login=False))
    assert not response.cookies["access_token"]["secure"]


def test_login_email_is_case_insensitive(make_account, client_csrf):
    account = make_account(login=False)
    response = client_csrf.post_json(LOGIN, {"email": account.email.upper(), "password": account.password})
    assert response.status_code == 200


def test_unknown_email_and_wrong_password_get_the_same_401(make_account, client_csrf):
    account = make_account(login=False)
    wrong_password = client_csrf.post_json(LOGIN, {"email": account.email, "password": "not the password"})
    unknown_email = client_csrf.post_json(LOGIN, {"email": "nobody@example.test", "password": account.password})
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.json() == unknown_email.json()
    assert "access_token" not in wrong_password.cookies


def test_me_requires_a_valid_access_cookie(account):
    assert account.client.get(ME).status_code == 200
    anonymous = CsrfClient()
    assert anonymous.get(ME).status_code == 401
    anonymous.cookies["access_token"] = "forged.token.value"
    assert anonymous.get(ME).status_code == 401


def test_access_token_signed_with_secret_key_is_rejected(settings, account):
    """JWTs are signed with JWT_SIGNING_KEY, not SECRET_KEY."""
    import jwt

    forged = jwt.encode(
        {"token_type": "access", "user_id": account.id, "jti": "x", "exp": 9999999999}, settings.SECRET_KEY, "HS256"
    )
    client = CsrfClient()
    client.cookies["access_token"] = forged
    assert client.get(ME).status_code == 401


def test_refresh_rotates_and_blacklists_the_old_token(account):
    old_refresh = account.client.cookies["refresh_token"].value
    response = account.client.post_json(REFRESH)
    assert response.status_code == 200
    new_refresh = response.cookies["refresh_token"].value
    assert new_refresh != old_refresh
    assert BlacklistedToken.objects.filter(token__token=token_digest(old_refresh)).exists()
    assert account.client.get(ME).status_code == 200


def test_reusing_a_rotated_refresh_token_revokes_every_session(account):
    stolen = account.client.cookies["refresh_token"].value
    assert account.client.post_json(REFRESH).status_code == 200
    # Past the grace window for concurrent refreshes, the old token reappears: theft.
    BlacklistedToken.objects.update(blacklisted_at=timezone.now() - timedelta(minutes=5))
    attacker = CsrfClient()
    attacker.cookies["refresh_token"] = stolen
    response = attacker.post_json(REFRESH)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_refresh_token"
    # The legitimate client's newest token was revoked too.
    assert account.client.post_json(REFRESH).status_code == 401
    assert not OutstandingToken.objects.filter(user_id=account.id, blacklistedtoken__isnull=True).exists()


def test_a_reuse_inside_the_grace_window_fails_without_logging_out_everywhere(account):
    old = account.client.cookies["refresh_token"].value
    assert account.client.post_json(REFRESH).status_code == 200
    racer = CsrfClient()
    racer.cookies["refresh_token"] = old
    assert racer.post_json(REFRESH).status_code == 401
    assert account.client.post_json(REFRESH).status_code == 200


def test_refresh_without_cookie_or_with_garbage_is_401(client_csrf):
    assert client_csrf.post_json(REFRESH).status_code == 401
    client_csrf.cookies["refresh_token"] = "garbage"
    assert client_csrf.post_json(REFRESH).status_code == 401


def test_access_token_cannot_be_used_as_refresh_token(account):
    client = CsrfClient()
    client.cookies["refresh_token"] = account.client.cookies["access_token"].value
    assert client.post_json(REFRESH).status_code == 401


def test_refresh_is_refused_for_a_deactivated_user(account):
    User.objects.filter(id=account.id).update(is_active=False)
    assert account.client.post_json(REFRESH).status_code == 401
    assert account.client.get(ME).status_code == 401


def test_logout_blacklists_refresh_clears_cookies_and_closes_sockets(
    account, monkeypatch, django_capture_on_commit_callbacks
):
    closed = []
    monkeypatch.setattr(
        "accounts.sessions.device_revoked_publish",
        lambda *, user_id, device_id, generation, removed: closed.append((user_id, device_id, removed)),
    )
    refresh = account.client.cookies["refresh_token"].value
    response = account.client.post_json(LOGOUT)
    assert response.status_code == 204
    assert response.cookies["access_token"].value == ""
    assert response.cookies["refresh_token"].value == ""
    assert response.cookies["refresh_token"]["path"] == "/api/v1/auth/"
    assert BlacklistedToken.objects.filter(token__token=token_digest(refresh)).exists()
    assert closed == [(account.id, 1, False)]
    replay = CsrfClient()
    replay.cookies["refresh_token"] = refresh
    assert replay.post_json(REFRESH).status_code == 401


@pytest.mark.parametrize("path", ["register", "login", "refresh", "logout"])
def test_every_unsafe_auth_route_requires_the_csrf_header(account, path):
    """Cookies present (as a forged cross-site request would carry them) but no header."""
    client = APIClient(enforce_csrf_checks=True)
    client.cookies = account.client.cookies
    response = client.post(f"/api/v1/auth/{path}", {}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_a_wrong_csrf_header_is_rejected(account):
    client = APIClient(enforce_csrf_checks=True)
    client.cookies = account.client.cookies
    response = client.post(LOGOUT, {}, format="json", HTTP_X_CSRFTOKEN="x" * 64)
    assert response.status_code == 403


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_refreshes_with_one_token_exactly_one_succeeds():
    account = register_account()
    token = account.client.cookies["refresh_token"].value
    csrf = account.client.cookies["csrftoken"].value
    results, barrier = [], threading.Barrier(2)

    def refresh():
        client = APIClient(enforce_csrf_checks=True)
        client.cookies["refresh_token"] = token
        client.cookies["csrftoken"] = csrf
        barrier.wait()
        results.append(client.post(REFRESH, {}, format="json", HTTP_X_CSRFTOKEN=csrf).status_code)
        connection.close()

    for _ in range(3):  # the race is timing-dependent: repeat it
        results.clear()
        threads = [threading.Thread(target=refresh) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == [200, 401]
        login_response = account.client.post_json(LOGIN, {"email": account.email, "password": account.password})
        token = login_response.cookies["refresh_token"].value
