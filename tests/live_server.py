"""Real daphne processes for the end-to-end test suites (browser, Python client).

Each server runs the real ASGI application with test secrets, on a free loopback port, with
its output in a log file the tests can search (no plaintext or key may ever appear there).
"""

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(name: str, **extra: str) -> dict:
    """The environment of a test server: production settings (DEBUG off) on plain http,
    fresh random secrets, the test suite's cheaper password hasher, no rate limits."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.browser.server_settings",
        "ENV_FILE": "",
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",
        "AUTH_COOKIE_SECURE": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECRET_KEY": f"{name}-secret-" + secrets.token_hex(24),
        "JWT_SIGNING_KEY": f"{name}-jwt-" + secrets.token_hex(24),
        "PASSWORD_PEPPER": f"{name}-pepper-" + secrets.token_hex(24),
        "RATE_LIMITS_ENABLED": "false",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def migrate(env: dict) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=180
    )


def start_daphne(env: dict, log_path: Path) -> tuple[subprocess.Popen, str, object]:
    """A daphne process with ``env`` (an already migrated database) on a free port, once it
    answers; returns (process, url, open log file)."""
    port = free_port()
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
                    return process, url, log
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("daphne did not start:\n" + log_path.read_text(errors="replace")[-3000:])
        time.sleep(0.2)


def stop_daphne(process: subprocess.Popen, log) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()
