#!/usr/bin/env python
"""What sockets that never read cost the server: one daphne process, one recipient with a
backlog of undelivered envelopes, and K sockets of that recipient that complete the
handshake and then read nothing (a small receive buffer, so the kernel holds little for
them). Prints the server's resident memory before, while they hang, and after they closed.

    .venv/bin/python bench/resource_probe.py                       # 8 sockets, 128 x 64 KiB
    .venv/bin/python bench/resource_probe.py --sockets 8 --envelopes 128 --size 65536
    .venv/bin/python bench/resource_probe.py --root /path/to/another/checkout   # compare

Without flow control the server writes the whole backlog to every socket, and Twisted keeps
what the socket does not take in its write buffer; with it each socket holds one window
(CHAT_UNACKED_WINDOW_BYTES). SQLite, a fresh temporary database, loopback only.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import chat_bench
from chat_bench import HOST, PYTHON, base_env, fresh_database, start_server, stop_server

SETUP = """
import json, os, sys, uuid
import django
django.setup()
from django.core.management import call_command
from rest_framework_simplejwt.tokens import AccessToken
from accounts.models import User
from chat import services
from contacts import services as contacts_services

call_command("migrate", verbosity=0, interactive=False)
count, size = int(sys.argv[1]), int(sys.argv[2])
sender, recipient = User.objects.bulk_create(
    [User(email=f"probe-{n}@example.test", password="!") for n in range(2)]
)
sender, recipient = User.objects.order_by("id")
request = contacts_services.contact_request_send(requester=sender, email=recipient.email)
contacts_services.contact_request_answer(recipient=recipient, request_id=request.id, action="accept")
for start in range(0, count, 50):
    requests = [
        services.SendRequest(sender.pk, sender.email, recipient.email, uuid.uuid4(), "message", "x" * size)
        for _ in range(min(50, count - start))
    ]
    services.envelopes_send(requests)
print(json.dumps(str(AccessToken.for_user(recipient))))
"""


def handshake(port: int, token: str, receive_buffer: int) -> socket.socket:
    """A WebSocket handshake by hand; afterwards the socket is never read."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect((HOST, port))
    request = (
        f"GET /ws/chat/ HTTP/1.1\r\nHost: {HOST}:{port}\r\nOrigin: http://{HOST}:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"Cookie: access_token={token}\r\n\r\n"
    )
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(head.decode(errors="replace"))
    return sock


def settle(server, quiet_seconds: float = 2.0, limit: float = 120.0) -> None:
    """Wait until the server has used no CPU for `quiet_seconds` (its writes are done)."""
    deadline = time.monotonic() + limit
    last, quiet_since = server.cpu_seconds(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = server.cpu_seconds()
        if now - last > 0.02:
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_seconds:
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=8)
    parser.add_argument("--envelopes", type=int, default=128)
    parser.add_argument("--size", type=int, default=65536, help="body bytes per envelope")
    parser.add_argument("--receive-buffer", type=int, default=4096, help="SO_RCVBUF of the silent sockets")
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[1]), help="checkout to serve")
    args = parser.parse_args()

    root = Path(args.root)
    env = base_env("sqlite", fresh_database("sqlite"))
    env["PYTHONPATH"] = str(root)
    token = json.loads(
        subprocess.run(
            [PYTHON, "-c", SETUP, str(args.envelopes), str(args.size)],
            cwd=root,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    # chat_bench.start_server runs daphne in its own checkout: point it at --root.
    chat_bench.ROOT = root
    server = start_server(env, "messenger.asgi:application")
    try:
        # Warm up (imports, the database thread, the first connection) with one socket that
        # does not wait for the backlog either, then measure.
        handshake(server.port, token, args.receive_buffer).close()
        settle(server)
        before = server.rss_kb()
        sockets = [handshake(server.port, token, args.receive_buffer) for _ in range(args.sockets)]
        settle(server)
        hanging = server.rss_kb()
        for sock in sockets:
            sock.close()
        settle(server)
        after = server.rss_kb()
        backlog_mib = args.envelopes * args.size / 2**20
        print(
            f"{root.name}: {args.sockets} silent sockets, backlog {args.envelopes} x {args.size} B "
            f"({backlog_mib:.1f} MiB): server RSS {before / 1024:.0f} MiB before, "
            f"{hanging / 1024:.0f} MiB while they hang (+{(hanging - before) / 1024:.0f}), "
            f"{after / 1024:.0f} MiB after they closed"
        )
    finally:
        stop_server(server)


if __name__ == "__main__":
    os.environ.setdefault("ENV_FILE", "")
    main()
