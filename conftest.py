from pathlib import Path

import pytest
from django.conf import settings

from tests.helpers import CsrfClient, register_account


@pytest.fixture
def client_csrf() -> CsrfClient:
    return CsrfClient()


@pytest.fixture
def account(db):
    """A registered, signed-in account (its client carries the auth cookies)."""
    return register_account()


@pytest.fixture
def make_account(db):
    return register_account


def pytest_configure(config):
    """A SQLite test database is a file in WAL mode (messenger/settings.py). Django deletes the
    file of an earlier run before it creates the new one, not its write-ahead log: a log left
    behind (a run killed, a connection open at exit) would be replayed into the new file."""
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        for suffix in ("-wal", "-shm"):
            Path(f"{database['TEST']['NAME']}{suffix}").unlink(missing_ok=True)


def pytest_collection_modifyitems(config, items):
    """`mariadb` tests need real row locks and concurrent transactions, `redis` tests a real
    Redis: they run in the MariaDB + Redis pass of scripts/test.sh and are skipped, with the
    reason, on the embedded defaults."""
    on_mariadb = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.mysql"
    on_redis = bool(settings.REDIS_URL)
    for item in items:
        if "mariadb" in item.keywords and not on_mariadb:
            item.add_marker(pytest.mark.skip(reason="needs MariaDB (runs in the MariaDB pass of scripts/test.sh)"))
        if "redis" in item.keywords and not on_redis:
            item.add_marker(
                pytest.mark.skip(reason="needs Redis (runs in the MariaDB + Redis pass of scripts/test.sh)")
            )


@pytest.fixture(autouse=True)
def _plain_http(settings):
    """Tests talk plain HTTP to the test server; production redirects to HTTPS."""
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["tests.helpers.FastPepperedPBKDF2PasswordHasher"]
