from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone


def normalize_email(email: str) -> str:
    """Emails are the login and compare case-insensitively: store them lower-cased and trimmed."""
    return (email or "").strip().lower()


class UserManager(BaseUserManager):
    use_in_migrations = True

    def get_by_natural_key(self, username):
        return self.get(email=normalize_email(username))

    def create_user(self, email: str, password: str | None = None, **extra):
        if not email:
            raise ValueError("An email is required.")
        user = self.model(email=normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """An account. The email is the login; it is unique regardless of case because it is
    always stored normalised (see `save`) under a unique index."""

    email = models.EmailField(max_length=254, unique=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["id"]
        constraints = [
            # The database refuses a non-normalised email even if some code path forgot to
            # normalise: case-insensitive uniqueness then follows from `unique=True`.
            models.CheckConstraint(
                condition=models.Q(email=models.functions.Lower("email")),
                name="accounts_user_email_lowercase",
            ),
        ]

    def save(self, *args, **kwargs):
        self.email = normalize_email(self.email)
        super().save(*args, **kwargs)

    def __str__(self) -> str:
        return self.email


class SessionGeneration(models.Model):
    """The account's session generation: every token (access and refresh) carries the value it
    was issued under, and only tokens of the current value are accepted (accounts.sessions).
    Ending every session is one increment. A missing row is generation 0.

    A table of its own rather than a column of User, so that `User.save()` from a form or an
    instance loaded before an increment can never write an older generation back (which would
    bring revoked tokens back to life)."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, primary_key=True, related_name="session_generation")
    value = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.value}"


class RateLimitBucket(models.Model):
    """One token bucket of `accounts.ratelimit` (GCRA: only the theoretical arrival time of
    the next request is stored). `key` is a SHA-256 of scope and subject, so the table holds
    no emails or IP addresses in clear. A marker (`rate_limit_mark`, e.g. "this account signed
    in from this address") is a row whose `tat` is its expiry: like a full bucket, it is
    purged once that time has passed."""

    key = models.CharField(max_length=64, primary_key=True)
    tat = models.FloatField()

    def __str__(self) -> str:
        return self.key
