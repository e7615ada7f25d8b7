"""Password sign-in, throttled so that guessing is slow and the owner cannot be locked out.

Every password check goes through `django.contrib.auth.authenticate()` and so through this
backend: the API login, the admin login and anything else. The limits (settings.RATE_LIMITS):

- `login_ip`, per client address (an IPv6 /64): every attempt. One address cannot run
  through many accounts (each attempt also costs a PBKDF2 run).
- `login_ip_account`, per (address, account): every attempt. Guessing one account from one
  address is slow; a successful sign-in refills it (the owner's typos do not linger).
- `login_account`, per account, slower and larger: only *failed* attempts from addresses
  where the account has *not* signed in successfully during the last
  RATE_LIMIT_LOGIN_KNOWN_ADDRESS_DAYS. An attacker spraying one account from many addresses
  is capped by it whatever the number of addresses (a correct guess from a new address is
  refused too while it is empty, or it would be a guessing oracle).

Why the owner is not locked out: the per-account budget is the only limit an attacker
elsewhere can empty, and an address where the account signed in recently neither needs nor
consumes it. The owner at their usual address keeps their own (address, account) and address
buckets, which nobody else can touch. What remains: an owner at a new address while someone
is spraying their account waits for the per-account budget (429 with Retry-After), and an
attacker sharing the owner's known address (same NAT) is held only by the per-(address,
account) limit, the same as before this budget existed.

The token of `login_account` is taken before the password check and given back on success,
so concurrent failures cannot overshoot the budget (a check-then-count would let them).
Unknown emails are counted like existing ones: the answers do not tell them apart.
"""

from django.conf import settings
from django.contrib.auth.backends import ModelBackend

from accounts.models import normalize_email
from accounts.ratelimit import rate_limit_hit, rate_limit_mark, rate_limit_marked, rate_limit_refund, rate_limit_reset
from messenger.ratelimit import client_address

KNOWN_ADDRESS = "login_known_address"


class ThrottledModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        """The user for these credentials, or None; raises messenger.errors.RateLimited
        (which `authenticate()` lets through to its caller) when a limit is reached."""
        if username is None:
            username = kwargs.get(self.user_model.USERNAME_FIELD)
        if username is None or password is None:
            return None
        address, account = client_address(request), normalize_email(username)
        pair = f"{address}\0{account}"
        rate_limit_hit("login_ip", address)
        rate_limit_hit("login_ip_account", pair)
        known = rate_limit_marked(KNOWN_ADDRESS, pair)
        if not known:
            rate_limit_hit("login_account", account)
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            return None
        if not known:
            rate_limit_refund("login_account", account)
        rate_limit_mark(KNOWN_ADDRESS, pair, seconds=settings.RATE_LIMIT_LOGIN_KNOWN_ADDRESS_DAYS * 86400)
        rate_limit_reset("login_ip_account", pair)
        return user
