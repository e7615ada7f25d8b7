"""Browser tests: real Chromium (Debian's package, driven by Playwright) against a real daphne
server with a fresh SQLite database, used through the UI the way a person would.

The server runs in a subprocess on a free loopback port; its stderr (the server log) is kept in
a file so tests can check that no plaintext or key ever reaches it. Browser tests do not use the
pytest-django test database: the server has its own.
"""

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings

from tests.live_server import migrate, server_env, start_daphne, stop_daphne

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "a long passphrase for tests"


def pytest_collection_modifyitems(config, items):
    on_mysql = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.mysql"
    for item in items:
        if "browser" not in item.keywords:
            continue
        if on_mysql:
            item.add_marker(pytest.mark.skip(reason="browser tests run once, in the embedded pass"))
        elif not Path(CHROMIUM).exists():
            item.add_marker(pytest.mark.skip(reason=f"{CHROMIUM} is missing (apt-get install chromium)"))


@dataclass
class LiveServer:
    url: str
    db_path: Path
    log_path: Path
    process: subprocess.Popen
    # Every plaintext the tests sent, for the leak checks.
    plaintexts: list[str] = field(default_factory=list)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def messenger_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser-server")
    db_path = tmp / "db.sqlite3"
    log_path = tmp / "server.log"
    env = server_env("browser", DATABASE_URL=f"sqlite:///{db_path}", REDIS_URL="", LOG_LEVEL="DEBUG")
    migrate(env)
    process, url, log = start_daphne(env, log_path)
    server = LiveServer(url=url, db_path=db_path, log_path=log_path, process=process)
    yield server
    stop_daphne(process, log)


@pytest.fixture(scope="package")
def browser():
    """Package-scoped on purpose: Playwright's sync API keeps an asyncio loop running in the
    main thread while it is open, which breaks every later test that runs a loop of its own
    (pytest-asyncio, asyncio.run). Closing it at the end of tests/browser/ avoids that."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def people(browser, messenger_server):
    """Makes browser contexts ("people"); closes what is left at the end of the test."""
    from tests.browser.helpers import Person

    made: list[Person] = []

    def make(name: str, email: str | None = None, **context_options) -> "Person":
        person = Person(
            browser=browser, server=messenger_server, name=name, context_options=context_options, email=email
        )
        made.append(person)
        return person

    yield make
    for person in made:
        person.close()
