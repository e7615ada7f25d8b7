"""Start-up checks for secrets.

A production server (DEBUG off) must never run with a missing, placeholder or shared secret:
SECRET_KEY protects sessions and CSRF, JWT_SIGNING_KEY mints access tokens and
PASSWORD_PEPPER is what makes a database dump useless for checking password guesses. Reusing
one value for two of them would let one leak compromise the other, so they must differ.

The check runs with every management command (`manage.py check`, `migrate`, ...) and, because
daphne runs no system checks, once more when the ASGI application is built.
"""

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

SECRET_SETTINGS = ("SECRET_KEY", "JWT_SIGNING_KEY", "PASSWORD_PEPPER")
MIN_SECRET_LENGTH = 32


@checks.register(checks.Tags.security)
def check_secrets(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    if settings.DEBUG:
        return []
    errors: list[checks.CheckMessage] = []
    values = {}
    for name in SECRET_SETTINGS:
        value = getattr(settings, name, "") or ""
        values[name] = value
        if not value or value.startswith(settings.INSECURE_DEFAULT_SECRET):
            errors.append(
                checks.Error(
                    f"{name} is missing or still the development placeholder.",
                    hint=f"Set {name} in the environment to a long random value (see .env.example).",
                    id="messenger.E001",
                )
            )
        elif len(value) < MIN_SECRET_LENGTH:
            errors.append(
                checks.Error(
                    f"{name} is shorter than {MIN_SECRET_LENGTH} characters.",
                    hint="Generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'",
                    id="messenger.E002",
                )
            )
    present = [v for v in values.values() if v and not v.startswith(settings.INSECURE_DEFAULT_SECRET)]
    if len(set(present)) != len(present):
        errors.append(
            checks.Error(
                "SECRET_KEY, JWT_SIGNING_KEY and PASSWORD_PEPPER must be three different values.",
                id="messenger.E003",
            )
        )
    return errors


def refuse_to_start_with_insecure_secrets() -> None:
    errors = check_secrets()
    if errors:
        raise ImproperlyConfigured("; ".join(e.msg for e in errors))
