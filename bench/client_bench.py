#!/usr/bin/env python
"""Load through the Python SDK with the real protocol: N pairs of registered users, each sender
sends M messages to its partner over the socket; the first is an X3DH prekey message, every one
is encrypted with the Double Ratchet, stored sealed in the sender's state file before it leaves,
and decrypted, stored and acknowledged by the recipient's client (all clients in this process,
one event loop). One daphne process on loopback.

    .venv/bin/python bench/client_bench.py                          # 20 pairs x 50 messages, SQLite
    .venv/bin/python bench/client_bench.py --pairs 50 --messages 40 --inflight 4
    .venv/bin/python bench/client_bench.py --backend mariadb        # MariaDB + Redis

Prints one line in bench/chat_bench.py's format (delivered messages per second, per server
CPU-second, latency from send() called to the decrypted message handed to the recipient, errors,
server memory, server and client CPU), then the same load as opaque envelopes measured by
bench/chat_bench.py right after it: the difference is the client-side protocol and state-file
cost.

Bounded on purpose: loopback only, at most 200 pairs, --timeout seconds for the load. The server
runs with RATE_LIMITS_ENABLED=false and the test suite's fast password hasher (registration is
not what is measured); each run uses a fresh database (a temporary SQLite file, or
`msg_client_bench` on MariaDB, dropped afterwards).
"""

import argparse
import asyncio
import contextlib
import os
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from messenger_client import Client  # noqa: E402

PYTHON = sys.executable
DAPHNE = str(Path(sys.executable).with_name("daphne"))
HOST = "127.0.0.1"
MAX_PAIRS = 200
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PASSWORD = "bench password 0123456789"
PASSPHRASE = "bench passphrase"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def mysql(url: str, sql: str) -> None:
    import MySQLdb

    parts = urllib.parse.urlsplit(url)
    connection = MySQLdb.connect(
        host=parts.hostname or HOST,
        port=parts.port or 3306,
        user=parts.username or "root",
        password=urllib.parse.unquote(parts.password or ""),
    )
    try:
        connection.cursor().execute(sql)
    finally:
        connection.close()


def start(backend: str, tmp: Path):
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.browser.server_settings",
        ENV_FILE="",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(48),
        JWT_SIGNING_KEY=secrets.token_urlsafe(48),
        PASSWORD_PEPPER=secrets.token_urlsafe(48),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        AUTH_COOKIE_SECURE="false",
        RATE_LIMITS_ENABLED="false",
        ACCESS_TOKEN_MINUTES="120",
        LOG_LEVEL="WARNING",
    )
    cleanup = []
    if backend == "mariadb":
        base = os.environ.get("BENCH_MARIADB_URL", "mysql://root@127.0.0.1:3306/msg_client_bench")
        name = urllib.parse.urlsplit(base).path.lstrip("/")
        mysql(base, f"DROP DATABASE IF EXISTS `{name}`")
        mysql(base, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        cleanup.append(lambda: mysql(base, f"DROP DATABASE IF EXISTS `{name}`"))
        env["DATABASE_URL"] = base
        env["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6")
    else:
        env["DATABASE_URL"] = f"sqlite:///{tmp / 'bench.sqlite3'}"
        env["REDIS_URL"] = ""
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    port = free_port()
    log = (tmp / "server.log").open("wb")
    process = subprocess.Popen(
        [DAPHNE, "-v", "0", "-b", HOST, "-p", str(port), "messenger.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise SystemExit(f"daphne exited, see {tmp / 'server.log'}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.2):
            break
        if time.monotonic() > deadline:
            process.kill()
            raise SystemExit("daphne did not start")
        time.sleep(0.1)

    def stop() -> None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        for step in cleanup:
            step()

    return f"http://{HOST}:{port}", process, stop


def server_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def server_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def client_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(url: str, pid: int, tmp: Path, pairs: int, messages: int, inflight: int, timeout: float) -> dict:
    run_id = secrets.token_hex(3)

    async def make(n: int) -> Client:
        client = Client.open(url, str(tmp / f"c{n}.sqlite3"), PASSPHRASE)
        await client.register(f"cb-{run_id}-{n}@example.test", PASSWORD)
        return client

    clients = await asyncio.gather(*(make(n) for n in range(2 * pairs)))
    pairs_list = [(clients[2 * n], clients[2 * n + 1]) for n in range(pairs)]
    for sender, recipient in pairs_list:
        await sender.add_contact(recipient.email)
        await recipient.answer_request(sender.email)
    await asyncio.gather(*(c.connect() for c in clients))

    latencies: list[float] = []
    errors = 0
    started: dict[str, float] = {}
    expected = pairs * messages
    done = asyncio.Event()

    async def receive(client: Client) -> None:
        nonlocal errors
        async for message in client.messages():
            if message.text is None:
                errors += 1
            else:
                latencies.append(time.perf_counter() - started.pop(message.text))
            if len(latencies) + errors >= expected:
                done.set()

    async def send(sender: Client, recipient: Client, numbers) -> None:
        nonlocal errors
        for i in numbers:
            text = f"{sender.email} {i}"
            started[text] = time.perf_counter()
            try:
                await sender.send(recipient.email, text)
            except Exception:
                errors += 1

    readers = [asyncio.create_task(receive(r)) for _, r in pairs_list]
    cpu0, client0, t0 = server_cpu_seconds(pid), client_cpu_seconds(), time.perf_counter()
    # Message 0 of each pair is the X3DH (prekey) message; then `inflight` lanes per pair on the ratchet.
    await asyncio.gather(*(send(s, r, [0]) for s, r in pairs_list))
    await asyncio.gather(
        *(send(s, r, range(1 + lane, messages, inflight)) for s, r in pairs_list for lane in range(inflight))
    )
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), timeout)
    seconds = time.perf_counter() - t0
    cpu = server_cpu_seconds(pid) - cpu0
    client_cpu = client_cpu_seconds() - client0
    for task in readers:
        task.cancel()
    for client in clients:
        await client.close()
    delivered = len(latencies)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "name": "sdk: x3dh + ratchet, sealed state",
        "sockets": 2 * pairs,
        "delivered": delivered,
        "seconds": seconds,
        "per_second": delivered / seconds,
        "per_cpu_second": delivered / cpu if cpu else 0.0,
        "p50_ms": q[49] * 1000,
        "p95_ms": q[94] * 1000,
        "p99_ms": q[98] * 1000,
        "errors": errors + max(0, expected - delivered - errors),  # lost or late counts as an error
        "server_rss_mb": server_rss_mb(pid),
        "server_cpu_seconds": cpu,
        "client_cpu_seconds": client_cpu,
    }


def print_result(r: dict) -> None:
    print(
        f"{r['name']:<34} {r['sockets']:>5} sockets  {r['delivered']:>6} msgs in {r['seconds']:5.1f}s  "
        f"{r['per_second']:7.0f}/s  {r['per_cpu_second']:7.0f}/server-CPU-s  "
        f"p50 {r['p50_ms']:6.1f} p95 {r['p95_ms']:6.1f} p99 {r['p99_ms']:6.1f} ms  errors {r['errors']}  "
        f"idle   n/a KB/socket  rss {r['server_rss_mb']:5.0f} MB  "
        f"(server CPU {r['server_cpu_seconds']:.1f}s, client CPU {r['client_cpu_seconds']:.1f}s)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "mariadb"], default="sqlite")
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--messages", type=int, default=50, help="per pair")
    parser.add_argument("--inflight", type=int, default=1, help="messages in flight per pair (closed loop)")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    if not 1 <= args.pairs <= MAX_PAIRS:
        raise SystemExit(f"--pairs must be in 1..{MAX_PAIRS}")
    if not 1 <= args.inflight <= args.messages:
        raise SystemExit("--inflight must be in 1..--messages")
    tmp = Path(tempfile.mkdtemp(prefix="client-bench-"))
    url, process, stop = start(args.backend, tmp)
    try:
        result = asyncio.run(run(url, process.pid, tmp, args.pairs, args.messages, args.inflight, args.timeout))
    finally:
        stop()
    result["name"] = f"{args.backend}, sdk x3dh+ratchet"
    print_result(result)
    print_opaque_baseline(args)


def print_opaque_baseline(args: argparse.Namespace) -> None:
    """The same load as opaque envelopes (bench/chat_bench.py: no client-side crypto, same
    pairs, messages and window), printed under ours so the cost of encryption shows."""
    command = [
        sys.executable,
        str(Path(__file__).with_name("chat_bench.py")),
        *("--backend", args.backend, "--processes", "1", "--pairs", str(args.pairs)),
        *("--messages", str(args.messages), "--inflight", str(args.pairs * args.inflight)),
        *("--timeout", str(args.timeout)),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout + 120, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        print(f"opaque baseline failed (bench/chat_bench.py exit {done.returncode}): {done.stderr[-500:]}")
        return
    print(lines[-1].replace(f"{args.backend}, 1 process(es)", f"{args.backend}, opaque envelopes", 1))


if __name__ == "__main__":
    main()
