"""Real daphne processes for the multi-process tests, and a small WebSocket client.

The servers run `messenger.asgi:application` exactly as in production, against the database
pytest-django created for this run (its `test_<name>`: the connection settings are read back
from the live connection) and the same Redis. They get secrets of their own; tokens for them
are minted in the test process and signed with their JWT key, as the server would sign them.
"""

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import jwt
from django.conf import settings
from django.db import connection
from django.utils.crypto import get_random_string
from rest_framework_simplejwt.tokens import AccessToken
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[2]
DAPHNE = str(Path(sys.executable).with_name("daphne"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url() -> str:
    """The URL of the database this test run uses (the test database, not the configured one)."""
    db = connection.settings_dict
    engine = db["ENGINE"].rsplit(".", 1)[-1]
    if engine == "sqlite3":
        return f"sqlite:///{db['NAME']}"
    scheme = {"mysql": "mysql", "postgresql": "postgres"}[engine]
    auth = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"{scheme}://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 3306}/{db['NAME']}"


@dataclass
class Server:
    port: int
    env: dict
    process: subprocess.Popen | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/chat/"

    def start(self, timeout: float = 30) -> None:
        self.log = Path(f"/tmp/chat-integration-{self.port}.log")
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [DAPHNE, "-b", "127.0.0.1", "-p", str(self.port), "messenger.asgi:application"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.1)
        raise RuntimeError("daphne did not start in time")

    def kill(self) -> None:
        """SIGKILL: the process dies without closing anything (a crash)."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Cluster:
    servers: list[Server]
    jwt_key: str

    def token_for(self, user) -> str:
        """An access token for `user` as the servers would issue it."""
        return jwt.encode(AccessToken.for_user(user).payload, self.jwt_key, algorithm="HS256")

    def session_for(self, user) -> tuple[str, str]:
        """(access, refresh) of a real session (recorded like a sign-in records it), signed
        with the servers' key."""
        from accounts.sessions import tokens_issue

        pair = tokens_issue(user=user, device=user.devices.filter(removed_at__isnull=True).first())
        return tuple(
            jwt.encode(jwt.decode(raw, options={"verify_signature": False}), self.jwt_key, algorithm="HS256")
            for raw in (pair.access, pair.refresh)
        )


def server_env(*, jwt_key: str) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    env.update(
        DEBUG="false",
        DATABASE_URL=database_url(),
        REDIS_URL=settings.REDIS_URL,
        SECRET_KEY=secrets.token_urlsafe(48),
        JWT_SIGNING_KEY=jwt_key,
        PASSWORD_PEPPER=secrets.token_urlsafe(48),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        RATE_LIMITS_ENABLED="false",
        LOG_LEVEL="WARNING",
    )
    return env


def http(server: Server, method: str, path: str, *, cookies: dict | None = None) -> int:
    """One HTTP request to a server the way the browser makes it (cookies; on unsafe methods
    the CSRF cookie echoed in X-CSRFToken); returns the status."""
    cookies = dict(cookies or {})
    if method != "GET":
        cookies["csrftoken"] = csrf = get_random_string(32)
    data = None if method == "GET" else b"{}"
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", method=method, data=data)
    request.add_header("Content-Type", "application/json")
    request.add_header("Cookie", "; ".join(f"{name}={value}" for name, value in cookies.items()))
    if method != "GET":
        request.add_header("X-CSRFToken", csrf)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@dataclass
class Client:
    """A chat socket the way the browser client uses it: connect, collect frames, ack."""

    url: str
    token: str
    frames: list[dict] = field(default_factory=list)
    ws: object = None
    reader: asyncio.Task | None = None
    queue_empty: asyncio.Event = field(default_factory=asyncio.Event)
    auto_ack: bool = True

    async def open(self) -> "Client":
        self.ws = await connect(
            self.url,
            additional_headers={
                "Cookie": f"{settings.AUTH_COOKIE_ACCESS}={self.token}",
                # The server admits only its own origin: the same host and port as the URL.
                "Origin": "http://" + urlsplit(self.url).netloc,
            },
            compression=None,
            proxy=None,
            open_timeout=10,
        )
        self.queue_empty = asyncio.Event()
        self.reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                frame = json.loads(raw)
                self.frames.append(frame)
                if frame["type"] == "queue_empty":
                    self.queue_empty.set()
                elif frame["type"] == "message" and self.auto_ack:
                    await self.ws.send(json.dumps({"type": "ack", "ids": [frame["id"]]}))

    async def send(self, frame: dict) -> None:
        await self.ws.send(json.dumps(frame))

    def of_type(self, kind: str) -> list[dict]:
        return [frame for frame in self.frames if frame["type"] == kind]

    async def wait_for(self, predicate, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; last frames: {self.frames[-5:]}")
            await asyncio.sleep(0.02)

    def abort(self) -> None:
        """Drop the TCP connection without a close handshake (a dead network)."""
        self.ws.transport.abort()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        if self.reader:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader
