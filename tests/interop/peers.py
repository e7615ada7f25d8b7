"""Two interchangeable protocol clients for the interop tests.

``JsPeer`` drives the browser implementation (static/js/crypto) through ``js_driver.mjs`` under Node;
``PyPeer`` uses ``messenger_client.protocol`` (the ``x3dh``/``doubleratchet``/``xeddsa`` libraries). Both
expose the same synchronous interface, so every scenario can run with either side on either end, and both
raise ``ProtocolError`` with the same codes.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from messenger_client.protocol import ProtocolAccount, ProtocolError, Session

DRIVER = Path(__file__).with_name("js_driver.mjs")
REPO_ROOT = Path(__file__).resolve().parents[2]


class DriverProcess:
    """One Node process running js_driver.mjs; JSON lines over stdin/stdout."""

    def __init__(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed")
        self._process = subprocess.Popen(
            [node, str(DRIVER)],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._ids = itertools.count(1)

    def call(self, command: str, **args: Any) -> Any:
        request_id = next(self._ids)
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._process.stdin.write(json.dumps({"id": request_id, "command": command, **args}) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("js_driver.mjs exited")
        reply = json.loads(line)
        assert reply["id"] == request_id
        if reply["ok"]:
            return reply["result"]
        error = reply["error"]
        if error["code"] == "internal":
            raise AssertionError(f"JavaScript raised a non-ProtocolError: {error['message']}")
        raise ProtocolError(error["code"], error["message"])

    def close(self) -> None:
        if self._process.stdin:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


class JsPeer:
    language = "js"

    def __init__(self, driver: DriverProcess, name: str, one_time_prekeys: int = 10) -> None:
        self._driver = driver
        self.name = name
        registration = driver.call("create_account", name=name, one_time_prekeys=one_time_prekeys)
        self.identity_key: str = registration["identity_key"]

    def one_time_prekey_ids(self) -> list[int]:
        return list(self._driver.call("one_time_prekey_ids", name=self.name))

    def bundle(self, one_time_prekey_id: int | None) -> dict[str, Any]:
        return dict(self._driver.call("bundle", name=self.name, one_time_prekey_id=one_time_prekey_id))

    def initiate(self, peer: str, bundle: dict[str, Any]) -> None:
        self._driver.call("initiate", name=self.name, peer=peer, bundle=bundle)

    def encrypt(self, peer: str, plaintext: bytes) -> tuple[str, str]:
        out = self._driver.call("encrypt", name=self.name, peer=peer, plaintext=base64.b64encode(plaintext).decode())
        return out["kind"], out["body"]

    def receive(self, peer: str, kind: str, body: str) -> bytes:
        out = self._driver.call("receive", name=self.name, peer=peer, kind=kind, body=body)
        return base64.b64decode(out["plaintext"])

    def session_snapshot(self, peer: str) -> str:
        return json.dumps(self._driver.call("session_state", name=self.name, peer=peer), sort_keys=True)

    def roundtrip(self, peer: str) -> None:
        self._driver.call("roundtrip_session", name=self.name, peer=peer)


class PyPeer:
    language = "py"

    def __init__(self, name: str, one_time_prekeys: int = 10) -> None:
        self.name = name
        self.account = ProtocolAccount.create(one_time_prekeys=one_time_prekeys)
        self.identity_key = base64.b64encode(self.account.identity_key).decode()
        self.sessions: dict[str, Session] = {}
        self._pending_bundles: dict[str, dict[str, Any]] = {}
        self._loop = asyncio.new_event_loop()

    def _run(self, coroutine: Any) -> Any:
        return self._loop.run_until_complete(coroutine)

    def one_time_prekey_ids(self) -> list[int]:
        return [key["key_id"] for key in self.account.one_time_prekeys()]

    def bundle(self, one_time_prekey_id: int | None) -> dict[str, Any]:
        return self.account.bundle(one_time_prekey_id)

    def initiate(self, peer: str, bundle: dict[str, Any]) -> None:
        # The library creates the ratchet together with the first message: defer to the first encrypt.
        self._pending_bundles[peer] = bundle

    def encrypt(self, peer: str, plaintext: bytes) -> tuple[str, str]:
        if peer in self._pending_bundles:
            session, out = self._run(self.account.initiate_session(self._pending_bundles.pop(peer), plaintext))
            self.sessions[peer] = session
        else:
            out = self._run(self.sessions[peer].encrypt(plaintext))
        return out.kind, out.body

    def receive(self, peer: str, kind: str, body: str) -> bytes:
        received = self._run(self.account.receive(kind, body, self.sessions.get(peer)))
        self.sessions[peer] = received.session
        return bytes(received.plaintext)

    def session_snapshot(self, peer: str) -> str:
        return json.dumps(self.sessions[peer].to_json(), sort_keys=True)

    def roundtrip(self, peer: str) -> None:
        self.sessions[peer] = Session.from_json(json.loads(json.dumps(self.sessions[peer].to_json())))

    def close(self) -> None:
        self._loop.close()


def tamper(body: str, position: int, mask: int = 0x01) -> str:
    """The body with one byte of its binary form XORed with ``mask``."""
    data = bytearray(base64.b64decode(body))
    data[position] ^= mask
    return base64.b64encode(bytes(data)).decode()


def body_length(body: str) -> int:
    return len(base64.b64decode(body))
