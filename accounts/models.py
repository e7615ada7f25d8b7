from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone


def normalize_email(email: str) -> str:
    """Emails are the login and compare case-insensitively: store them lower-cased and trimmed.
    Every lookup (sign-in, contact requests, keys, messages) goes through this one function,
    so an address matches its account however it was typed. (For the ASCII addresses new
    accounts must have, lower-casing is Unicode case folding; accounts made before that rule
    keep matching exactly as before.)"""
    return (email or "").strip().lower()


NON_ASCII_EMAIL = (
    "Use an email address in plain ASCII letters; write an internationalised domain in its "
    "xn-- (punycode) form, e.g. xn--bcher-kva.example for bücher.example."
)


def email_for_new_account(email: str) -> str:
    """The normalised email of a NEW account, or ValueError(NON_ASCII_EMAIL).

    The rule: ASCII only, in the local part and the domain (an IDN domain in its punycode
    form). People tell accounts apart by their email, and Unicode has letters that look the
    same as ASCII ones (Cyrillic U+0430 as Latin "a", fullwidth U+FF41, Greek omicron U+03BF
    as "o"...): without the rule, "alice@ex\u0430mple.org" could be registered next to
    "alice@example.org" and ask Alice's contacts to talk to it. With only ASCII stored, an
    internationalised domain shows as "xn--...", which no one mistakes for a Latin one.

    Why not convert a Unicode domain to punycode ourselves: the standard library's "idna"
    codec is IDNA 2003, which maps some names differently from IDNA 2008 (what registries
    use; "ß" becomes "ss"). Why not a skeleton check (Unicode TR39): it needs a confusables
    table this project does not ship, and still leaves judgement calls. Django's
    EmailValidator is no guard: it accepts Unicode domains, and its case-insensitive pattern
    even lets the dotless i (U+0131), the long s (U+017F) and the Kelvin sign (U+212A) through
    in local parts, as "i", "s" and "k".

    Existing accounts are unaffected: lookups only normalise (`normalize_email`)."""
    normalised = normalize_email(email)
    if not normalised.isascii():
        raise ValueError(NON_ASCII_EMAIL)
    return normalised


class UserManager(BaseUserManager):
    use_in_migrations = True

    def get_by_natural_key(self, username):
        return self.get(email=normalize_email(username))

    def make_user(self, email: str, password: str | None, **extra) -> "User":
        """A new, unsaved account: its email held to the rule for new accounts
        (`email_for_new_account`) and its password hashed. Hashing is slow on purpose: call
        this outside any transaction (see accounts.services.user_build)."""
        if not email:
            raise ValueError("An email is required.")
        user = self.model(email=email_for_new_account(email), **extra)
        user.set_password(password)
        return user

    def create_user(self, email: str, password: str | None = None, **extra):
        user = self.make_user(email, password, **extra)
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


# Device ids are 1..2**31-1 (docs/PROTOCOL.md section 14); 0 in a token means "no device yet"
# (a pending session).
MIN_DEVICE_ID = 1
MAX_DEVICE_ID = 2**31 - 1
DEVICE_NAME_MAX_LENGTH = 64


class Device(models.Model):
    """One browser profile or one terminal-client state file of an account (docs/PROTOCOL.md
    section 14). The account's identity key is shared by its devices (keys.models.IdentityKey);
    each device has its own prekeys (keys.models) and its own sessions with the server: every
    token names its device (accounts.sessions).

    A removed device stays as a tombstone (`removed_at` set) so that its number is never given
    to another device: a contact's session with the old device must never be used to encrypt
    to a new one. `generation` ends this device's sessions alone (logout), as
    SessionGeneration does for the whole account."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="devices")
    device_id = models.IntegerField()
    name = models.CharField(max_length=DEVICE_NAME_MAX_LENGTH)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    generation = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["user_id", "device_id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "device_id"], name="accounts_device_user_device_id_unique"),
            models.CheckConstraint(
                condition=models.Q(device_id__gte=MIN_DEVICE_ID) & models.Q(device_id__lte=MAX_DEVICE_ID),
                name="accounts_device_device_id_range",
            ),
        ]

    def __str__(self) -> str:
        return f"device {self.device_id} of {self.user_id}"
