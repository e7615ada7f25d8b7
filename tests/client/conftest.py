"""The Python client against a real server: a daphne subprocess on the suite's backend.

In the embedded pass (SQLite) the server gets its own fresh SQLite file; in the MariaDB + Redis
pass it gets its own database (``msg_client_<pid>``, created, migrated and dropped here) and the
suite's Redis. The server runs with ``tests.browser.server_settings`` (the real settings with the
test suite's cheaper password hasher) and without rate limits.
"""

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "a long password for client tests"
PASSPHRASE = "state file passphrase"


def on_mysql() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.mysql"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def start_daphne(env: dict, log_path: Path) -> tuple[subprocess.Popen, str, object]:
    """One more daphne process with ``env`` (an already migrated database) on a free port."""
    port = _free_port()
    daphne = ROOT / ".venv" / "bin" / "daphne"
    command = [str(daphne)] if daphne.exists() else [sys.executable, "-m", "daphne"]
    log = log_path.open("wb")
    process = subprocess.Popen(
        [*command, "-b", "127.0.0.1", "-p", str(port), "messenger.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/login", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("daphne did not start:\n" + log_path.read_text(errors="replace")[-3000:])
        time.sleep(0.2)
    return process, url, log


def start_server(tmp: Path, **extra_env: str) -> tuple[Server, callable]:
    log_path = tmp / "server.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.browser.server_settings",
        "ENV_FILE": "",
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",
        "AUTH_COOKIE_SECURE": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECRET_KEY": "client-secret-" + secrets.token_hex(24),
        "JWT_SIGNING_KEY": "client-jwt-" + secrets.token_hex(24),
        "PASSWORD_PEPPER": "client-pepper-" + secrets.token_hex(24),
        "RATE_LIMITS_ENABLED": "false",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
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
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=180
    )
    process, url, log = start_daphne(env, log_path)

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
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
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()
