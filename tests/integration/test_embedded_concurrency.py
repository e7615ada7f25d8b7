"""The embedded default (one daphne on a SQLite file) under concurrent sign-ups and sign-ins.

SQLite has one write lock per database; a writer that holds it for long makes the others wait
in SQLite's busy handler, which is not first come first served, and a waiter past the 20 s
busy timeout answered 500 "database is locked". The server runs with the production password
hasher here (the expensive step that used to run under the lock), on a file database, with
rate limits on (their buckets are writes too) but wide enough for the test's traffic.
"""

import http.cookiejar
import json
import threading
import urllib.error
import urllib.request
from collections import Counter

import pytest
from django.conf import settings

from tests.helpers import DEFAULT_PASSWORD, DeviceKeys
from tests.live_server import migrate, server_env, start_daphne, stop_daphne

THREADS = 8
PER_THREAD = 3

pytestmark = pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3",
    reason="the embedded default's SQLite locking (MariaDB has row locks; its pass runs the cluster tests)",
)


@pytest.fixture
def sqlite_server(tmp_path):
    env = server_env(
        "sqlite-concurrency",
        DJANGO_SETTINGS_MODULE="messenger.settings",  # the production hasher, not the tests' cheap one
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        REDIS_URL="",
        RATE_LIMITS_ENABLED="true",
        RATE_LIMIT_REGISTER_IP="1000/60",
        RATE_LIMIT_LOGIN_IP="1000/60",
    )
    migrate(env)
    process, url, log = start_daphne(env, tmp_path / "server.log")
    yield url, tmp_path / "server.log"
    stop_daphne(process, log)


class _Browser:
    """One person's cookie jar, echoing the CSRF cookie as the browser client does."""

    def __init__(self, url: str):
        self.url = url
        jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        self.opener.open(f"{url}/api/v1/auth/csrf", timeout=60).read()
        self.csrf = next(cookie.value for cookie in jar if cookie.name == "csrftoken")

    def post(self, path: str, body: dict) -> int:
        request = urllib.request.Request(
            f"{self.url}/api/v1/{path}",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "X-CSRFToken": self.csrf},
        )
        try:
            with self.opener.open(request, timeout=120) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code


def test_concurrent_registrations_and_logins_never_fail_on_sqlite(sqlite_server):
    url, log_path = sqlite_server
    answers: Counter = Counter()
    counting = threading.Lock()  # `+=` on a Counter is not atomic across threads
    failures: list[BaseException] = []

    def person(thread: int) -> None:
        try:
            for n in range(PER_THREAD):
                email = f"p{thread}-{n}@example.test"
                browser = _Browser(url)
                registration = {"email": email, "password": DEFAULT_PASSWORD, **DeviceKeys().registration_keys(10)}
                registered = browser.post("auth/register", registration)
                logged_in = browser.post("auth/login", {"email": email, "password": DEFAULT_PASSWORD})
                with counting:
                    answers["register", registered] += 1
                    answers["login", logged_in] += 1
        except BaseException as exc:  # reported by the test thread below
            failures.append(exc)

    threads = [threading.Thread(target=person, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not failures, failures
    total = THREADS * PER_THREAD
    assert answers == Counter({("register", 201): total, ("login", 200): total}), (
        answers,
        log_path.read_text(errors="replace")[-4000:],
    )
    assert "database is locked" not in log_path.read_text(errors="replace")
