"""Settings for Secured Messenger.

Everything configurable comes from the environment (django-environ); every variable is
documented in `.env.example`. With nothing configured the project runs on its embedded
defaults: a SQLite file under `var/` and the in-memory channel layer.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent

# Placeholder values that must never reach production; the deploy check in
# `messenger.checks` refuses to start a non-DEBUG server that still uses them.
INSECURE_DEFAULT_SECRET = "insecure-development-secret-change-me"

env = environ.Env()
# A `.env` beside manage.py is read if present (the set-up script writes one with random
# secrets on first run); real environment variables always win over it. ENV_FILE names
# another file, or none at all when empty (the test script does that, so a developer's
# .env never changes what the tests see).
ENV_FILE = env.str("ENV_FILE", default=str(BASE_DIR / ".env"))
if ENV_FILE and Path(ENV_FILE).is_file():
    environ.Env.read_env(ENV_FILE, overwrite=False)

# --- Django ---------------------------------------------------------------------------

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default=INSECURE_DEFAULT_SECRET)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "channels",
    "accounts",
    "keys",
    "contacts",
    "groups",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "messenger.urls"
ASGI_APPLICATION = "messenger.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Unset DATABASE_URL -> a SQLite file under the git-ignored var/ folder.
VAR_DIR = BASE_DIR / "var"
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take the write lock up front, so two concurrent
    # read-then-write transactions (rate-limit counters, token rotation) serialise
    # instead of failing with "database is locked" half-way through.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
    )
    # Tests use a file too (beside the database, suffixed), not Django's default shared-cache
    # in-memory database: there a reader locks whole tables, and a write that meets a socket's
    # read in another thread fails at once with "database table is locked" (no busy timeout
    # applies), which a file in WAL mode, the way the app runs, never does.
    DATABASES["default"].setdefault("TEST", {}).setdefault("NAME", f"{DATABASES['default']['NAME']}-test")
elif DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
    DATABASES["default"].setdefault("OPTIONS", {}).update({"charset": "utf8mb4", "isolation_level": "read committed"})
    DATABASES["default"].setdefault("TEST", {}).update({"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"})
# Under ASGI every request runs in a thread of its own: persistent connections leak.
DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Where `manage.py collectstatic` puts the files a production web server (nginx) serves
# itself under /static/ (see docs/DEPLOY.md).
STATIC_ROOT = env.path("STATIC_ROOT", default=VAR_DIR / "staticfiles")
# WhiteNoise serves static files from daphne itself (no separate web server needed for a
# small installation); with DEBUG it reads them straight from STATICFILES_DIRS.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

LOGIN_URL = "/login"

# --- Passwords ------------------------------------------------------------------------

# The pepper is a server-side secret mixed into every password hash; it lives only in the
# environment, so a database dump alone cannot be used to verify password guesses.
# PASSWORD_PEPPER_OLD lists retired peppers that still verify (and are re-hashed with the
# current one at the next successful login).
PASSWORD_PEPPER = env.str("PASSWORD_PEPPER", default=INSECURE_DEFAULT_SECRET)
PASSWORD_PEPPER_OLD = env.list("PASSWORD_PEPPER_OLD", default=[])
PASSWORD_HASHERS = ["accounts.hashers.PepperedPBKDF2PasswordHasher"]
# Every password check (API login, admin login) is throttled by this backend (see
# accounts.backends and the login limits below).
AUTHENTICATION_BACKENDS = ["accounts.backends.ThrottledModelBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Security -------------------------------------------------------------------------

CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# The auth cookies' Secure flag: on unless DEBUG (plain http://127.0.0.1 in development).
AUTH_COOKIE_SECURE = env.bool("AUTH_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_SECURE = AUTH_COOKIE_SECURE
CSRF_COOKIE_SECURE = AUTH_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Strict"
SESSION_COOKIE_SAMESITE = "Strict"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Reverse proxies (addresses or networks) whose X-Forwarded-For / X-Forwarded-Proto are
# believed: the client is the right-most X-Forwarded-For entry, the one the proxy added
# (messenger.proxy). Empty: the headers are ignored and the peer address is the client.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG

# One strict policy for every page: scripts only from this origin (no inline code), no
# plugins, no <base> rewriting, no framing, network only back to this origin.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}

# --- Django REST framework --------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.CookieJWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.DeviceBound"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["messenger.api.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "messenger.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Secured Messenger API",
    "DESCRIPTION": (
        "JSON API of a self-hosted end-to-end-encrypted messenger. The server stores and relays "
        "only public keys and ciphertext. Authentication: JWT in HttpOnly cookies; every unsafe "
        "method needs the `csrftoken` cookie echoed in the `X-CSRFToken` header. A request body "
        "larger than 6 x MESSAGE_MAX_BODY_BYTES + 64 KiB (448 KiB by default) is refused with "
        "413 `request_too_large`. No route takes an email in its path or query string (access "
        "logs record those): emails travel in JSON bodies."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- SIMPLE_JWT -----------------------------------------------------------------------

# A signing key of its own, so that leaking SECRET_KEY (sessions, CSRF) does not let
# anyone mint access tokens, and vice versa.
JWT_SIGNING_KEY = env.str("JWT_SIGNING_KEY", default=INSECURE_DEFAULT_SECRET + "-jwt")
ACCESS_TOKEN_MINUTES = env.int("ACCESS_TOKEN_MINUTES", default=5)
REFRESH_TOKEN_DAYS = env.int("REFRESH_TOKEN_DAYS", default=14)
SIMPLE_JWT = {
    # Access tokens cannot be revoked: keep them short-lived.
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=ACCESS_TOKEN_MINUTES),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=REFRESH_TOKEN_DAYS),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "CHECK_USER_IS_ACTIVE": True,
}
AUTH_COOKIE_ACCESS = "access_token"
AUTH_COOKIE_REFRESH = "refresh_token"
AUTH_COOKIE_REFRESH_PATH = "/api/v1/auth/"

# --- Rate limits ----------------------------------------------------------------------

# Each limit is "<count>/<seconds>": a burst of <count> requests, refilled at that rate
# (a token bucket kept in the database, so it holds across processes). RATE_LIMITS_ENABLED
# switches every limit off at once (benchmarks only).
RATE_LIMITS_ENABLED = env.bool("RATE_LIMITS_ENABLED", default=True)
RATE_LIMITS = {
    # Sign-in (API and admin; accounts.backends): every attempt per client address (IPv6: per
    # /64) and per (address, account); failed attempts per account, counted only from
    # addresses where the account has not signed in for RATE_LIMIT_LOGIN_KNOWN_ADDRESS_DAYS,
    # so failures elsewhere cannot lock the owner out at their usual address.
    "login_ip": env.str("RATE_LIMIT_LOGIN_IP", default="20/300"),
    "login_ip_account": env.str("RATE_LIMIT_LOGIN_IP_ACCOUNT", default="5/300"),
    "login_account": env.str("RATE_LIMIT_LOGIN_ACCOUNT", default="30/3600"),
    "register_ip": env.str("RATE_LIMIT_REGISTER_IP", default="10/3600"),
    "register_email": env.str("RATE_LIMIT_REGISTER_EMAIL", default="3/3600"),
    "refresh_ip": env.str("RATE_LIMIT_REFRESH_IP", default="60/60"),
    "identity_reset": env.str("RATE_LIMIT_IDENTITY_RESET", default="5/3600"),
    "contact_request": env.str("RATE_LIMIT_CONTACT_REQUEST", default="20/3600"),
    # Creating a group or adding a member (each one a notice to every member).
    "group_change": env.str("RATE_LIMIT_GROUP_CHANGE", default="60/3600"),
    # Signal's bucket: 6 bundles per (requester, target) pair, one more every 10 minutes.
    "prekey_bundle": env.str("RATE_LIMIT_PREKEY_BUNDLE", default="6/3600"),
    "message_send": env.str("RATE_LIMIT_MESSAGE_SEND", default="60/10"),
    "typing": env.str("RATE_LIMIT_TYPING", default="20/10"),
    "group_send": env.str("RATE_LIMIT_GROUP_SEND", default="30/10"),
    # Receipt questions (up to 1,000 ids each): a client asks once per connect.
    "receipts": env.str("RATE_LIMIT_RECEIPTS", default="10/60"),
    # Socket frames counted per user and process (realtime.ratelimit), far above what a client
    # sends: the clients acknowledge each message (or a few at once) as it arrives, so a
    # backlog of small messages means a burst of `ack` frames; the browser sends `sync`
    # every 30 s as a heartbeat. Each `sync` re-reads the user's queue.
    "ack": env.str("RATE_LIMIT_ACK", default="2000/10"),
    "read": env.str("RATE_LIMIT_READ", default="2000/10"),
    "sync": env.str("RATE_LIMIT_SYNC", default="20/60"),
}
# How long a successful sign-in exempts its (address, account) from the per-account budget.
RATE_LIMIT_LOGIN_KNOWN_ADDRESS_DAYS = env.int("RATE_LIMIT_LOGIN_KNOWN_ADDRESS_DAYS", default=30)

# --- CHANNEL_LAYERS ---------------------------------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    # Redis pub/sub: fire-and-forget fan-out between processes, which is all a nudge needs
    # (envelopes live in the database). It was the fastest of channels-redis' layers measured;
    # realtime.redis_layer is our own, on redis-py, with the same wire format.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "realtime.redis_layer.RedisPubSubLayer",
            "CONFIG": {"hosts": [{"address": REDIS_URL}]},
        }
    }
else:
    # One process: channels' InMemoryChannelLayer scans every channel and group on each
    # operation; this subclass indexes them (see realtime.layers).
    CHANNEL_LAYERS = {"default": {"BACKEND": "realtime.layers.IndexedInMemoryChannelLayer"}}

# --- Chat -------------------------------------------------------------------------------

# Largest envelope body accepted (bytes of the ciphertext string as sent).
MESSAGE_MAX_BODY_BYTES = env.int("MESSAGE_MAX_BODY_BYTES", default=64 * 1024)
# Undelivered envelopes older than this are deleted by `manage.py purge_messages`.
MESSAGE_RETENTION_DAYS = env.int("MESSAGE_RETENTION_DAYS", default=30)
# Keep ciphertext after delivery (default: erase it, keeping only the metadata receipts need).
KEEP_DELIVERED_BODIES = env.bool("KEEP_DELIVERED_BODIES", default=False)
# Storage quotas: body bytes of undelivered envelopes a user may have sent (waiting for any
# recipient) and may have waiting for them (from all senders). A send over either is refused
# with `quota_exceeded`; delivery frees the room. 0 switches a quota off.
MESSAGE_QUOTA_SENDER_BYTES = env.int("MESSAGE_QUOTA_SENDER_BYTES", default=32 * 1024 * 1024)
MESSAGE_QUOTA_RECIPIENT_BYTES = env.int("MESSAGE_QUOTA_RECIPIENT_BYTES", default=128 * 1024 * 1024)
# Open chat sockets per user across all server processes (with REDIS_URL, counted in Redis);
# the next one is closed with 4429. 0: no cap.
CHAT_MAX_SOCKETS_PER_USER = env.int("CHAT_MAX_SOCKETS_PER_USER", default=10)
# Flow control: body bytes of envelopes one socket may have sent and not had acknowledged;
# the rest waits in the database until acknowledgements free room.
CHAT_UNACKED_WINDOW_BYTES = env.int("CHAT_UNACKED_WINDOW_BYTES", default=1024 * 1024)

# --- Keys -------------------------------------------------------------------------------

# A replaced signed prekey stays on record (retired) this long, and clients keep its private
# half as long, so first messages encrypted to it can still be read: keep it at least
# MESSAGE_RETENTION_DAYS (an undelivered first message lives that long).
SIGNED_PREKEY_GRACE_DAYS = env.int("SIGNED_PREKEY_GRACE_DAYS", default=30)
# `manage.py audit_prekeys` flags current signed prekeys older than this; clients are told it
# (GET /api/v1/keys/prekeys/count) and rotate before.
SIGNED_PREKEY_MAX_AGE_DAYS = env.int("SIGNED_PREKEY_MAX_AGE_DAYS", default=30)
# Active devices an account may have (docs/PROTOCOL.md section 14); one more is refused with
# 409 `too_many_devices`. Every message is encrypted once per device, so this bounds the cost
# of one send too.
DEVICES_PER_ACCOUNT_MAX = env.int("DEVICES_PER_ACCOUNT_MAX", default=5)

# --- Groups -----------------------------------------------------------------------------

# Members of one group (409 `group_full`) and groups one account may be in (409
# `too_many_groups`): a group message is fanned out to every member's devices.
GROUP_MEMBERS_MAX = env.int("GROUP_MEMBERS_MAX", default=256)
GROUPS_PER_USER_MAX = env.int("GROUPS_PER_USER_MAX", default=100)
# The largest group message frame: the body and a sender key entry (a body of at most 1,024
# characters, chat.validation.GROUP_KEY_BODY_MAX, with its email and JSON: 1,536) per device
# of every member (docs/PROTOCOL.md section 23).
GROUP_SEND_MAX_BYTES = MESSAGE_MAX_BODY_BYTES + GROUP_MEMBERS_MAX * DEVICES_PER_ACCOUNT_MAX * 1536
# Largest request body Django reads (DRF's JSON parser reads through `request.body`, so the
# API gets it too: 413 `request_too_large`). Sized to the largest legitimate request, a
# message sent over REST:
#   version 1: one body of at most MESSAGE_MAX_BODY_BYTES characters, which JSON may escape
#   as "\u00XX" (6 bytes each): 6 * 65,536 = 393,216 bytes;
#   version 2: a body per device of the recipient and per other device of the sender, at most
#   2 * DEVICES_PER_ACCOUNT_MAX - 1 of them (9 x 65,536 = 589,824 bytes by default), the
#   socket's frame limit (chat.consumers.max_frame_size);
#   plus client_id, kinds, device ids and the recipient, under 4 KiB;
#   a group message (GROUP_SEND_MAX_BYTES): one body and a sender key entry for each member
#   device, in the worst case every device of every member at once.
# A registration or device reset is far smaller: 100 one-time prekeys of under 400 bytes
#   each even with every string character escaped (40 KB), a signed prekey, an identity key,
#   the password (1,024 characters, 12 KB escaped) and the email: under 64 KiB.
# So the largest of these plus 64 KiB of margin (2,097,152 bytes by default).
DATA_UPLOAD_MAX_MEMORY_SIZE = (
    max(max(6, 2 * DEVICES_PER_ACCOUNT_MAX - 1) * MESSAGE_MAX_BODY_BYTES, GROUP_SEND_MAX_BYTES) + 64 * 1024
)

# --- Logging ----------------------------------------------------------------------------

# Never log request bodies, keys or message payloads: only metadata goes to the log.
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
