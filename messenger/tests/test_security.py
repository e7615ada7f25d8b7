"""Deployment checks, secrets at start-up, and the pages' Content-Security-Policy."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from messenger.checks import check_secrets, refuse_to_start_with_insecure_secrets

TEMPLATES = Path(settings.BASE_DIR) / "templates"
STRONG = {
    "SECRET_KEY": "s" * 20 + "0123456789abcdefghijklmnopqrstuvwxyz",
    "JWT_SIGNING_KEY": "j" * 20 + "0123456789abcdefghijklmnopqrstuvwxyz",
    "PASSWORD_PEPPER": "p" * 20 + "0123456789abcdefghijklmnopqrstuvwxyz",
}


@pytest.fixture
def production(settings):
    settings.DEBUG = False
    for name, value in STRONG.items():
        setattr(settings, name, value)
    settings.ALLOWED_HOSTS = ["chat.example.org"]
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = settings.SECURE_HSTS_PRELOAD = True
    settings.AUTH_COOKIE_SECURE = settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    return settings


def test_check_deploy_reports_nothing_with_production_settings(production, capsys):
    call_command("check", "--deploy", "--fail-level", "WARNING")
    assert "no issues" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(STRONG))
def test_production_refuses_a_placeholder_secret(production, name):
    setattr(production, name, settings.INSECURE_DEFAULT_SECRET)
    assert [e.id for e in check_secrets()] == ["messenger.E001"]
    with pytest.raises(ImproperlyConfigured):
        refuse_to_start_with_insecure_secrets()


def test_production_refuses_missing_short_or_shared_secrets(production):
    production.PASSWORD_PEPPER = ""
    assert "messenger.E001" in [e.id for e in check_secrets()]
    production.PASSWORD_PEPPER = "short"
    assert "messenger.E002" in [e.id for e in check_secrets()]
    production.PASSWORD_PEPPER = production.SECRET_KEY
    assert "messenger.E003" in [e.id for e in check_secrets()]


def test_debug_allows_development_placeholders(settings):
    settings.DEBUG = True
    settings.SECRET_KEY = settings.INSECURE_DEFAULT_SECRET
    assert check_secrets() == []


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/login", "/register"])
def test_pages_send_a_strict_csp_and_the_csrf_cookie(client, path):
    response = client.get(path)
    assert response.status_code == 200
    csp = response["Content-Security-Policy"]
    for directive in (
        "script-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "connect-src 'self'",
    ):
        assert directive in csp
    assert "unsafe-inline" not in csp
    assert "csrftoken" in response.cookies
    assert response["X-Frame-Options"] == "DENY"


def test_templates_have_no_inline_scripts_or_handlers():
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag, f"inline script in {template.name}"
        assert not re.search(r"\son[a-z]+\s*=", text), f"inline event handler in {template.name}"
        assert "javascript:" not in text


def test_boolean_settings_are_parsed_as_booleans(monkeypatch):
    import environ

    monkeypatch.setenv("DEBUG", "False")
    assert environ.Env().bool("DEBUG") is False
    monkeypatch.setenv("DEBUG", "off")
    assert environ.Env().bool("DEBUG") is False
