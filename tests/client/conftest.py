"""The Python client against a real server: a daphne subprocess on the suite's backend.

In the embedded pass (SQLite) the server gets its own fresh SQLite file; in the MariaDB + Redis
pass it gets its own database (``msg_client_<pid>``, created, migrated and dropped here) and the
suite's Redis. The server runs with ``tests.browser.server_settings`` (the real settings with the
test suite's cheaper password hasher) and without rate limits.
"""

import os
import secrets
import subprocess
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from tests.live_server import migrate, server_env, start_daphne, stop_daphne

PASSWORD = "a long password for client tests"
PASSPHRASE = "state file passphrase"


def on_mysql() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.mysql"


@dataclass
class Server:
    url: str
    env: dict
    log_path: Path
    process: subprocess.Popen

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def _mysql(database_url: str, sql: str) -> None:
    import MySQLdb

    parts = urllib.parse.urlsplit(database_url)
    connection = MySQLdb.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=urllib.parse.unquote(parts.username or "root"),
        password=urllib.parse.unquote(parts.password or ""),
    )
    try:
        connection.cursor().execute(sql)
    finally:
        connection.close()


def start_server(tmp: Path, **extra_env: str) -> tuple[Server, callable]:
    log_path = tmp / "server.log"
    env = server_env("client", LOG_LEVEL="INFO")
    cleanup = []
    if on_mysql():
        base = os.environ["DATABASE_URL"]
        name = f"msg_client_{os.getpid()}_{secrets.token_hex(3)}"
        _mysql(base, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        cleanup.append(lambda: _mysql(base, f"DROP DATABASE IF EXISTS `{name}`"))
        parts = urllib.parse.urlsplit(base)
        env["DATABASE_URL"] = urllib.parse.urlunsplit(parts._replace(path="/" + name))
        env["REDIS_URL"] = os.environ.get("REDIS_URL", "")
    else:
        env["DATABASE_URL"] = f"sqlite:///{tmp / 'db.sqlite3'}"
        env["REDIS_URL"] = ""
    env.update(extra_env)
    migrate(env)
    process, url, log = start_daphne(env, log_path)

    def stop() -> None:
        stop_daphne(process, log)
        for step in cleanup:
            step()

    return Server(url=url, env=env, log_path=log_path, process=process), stop


@pytest.fixture(scope="session")
def client_server(tmp_path_factory):
    server, stop = start_server(tmp_path_factory.mktemp("client-server"))
    yield server
    stop()


@pytest.fixture
def second_process(client_server, tmp_path):
    """Another daphne process on the same database (and Redis, in the MariaDB + Redis pass)."""
    process, url, log = start_daphne(client_server.env, tmp_path / "second.log")
    yield url
    stop_daphne(process, log)
