#!/usr/bin/env python
"""Load generator for the chat socket: N pairs of users, each sender sends M envelopes to its
partner, every envelope stored, pushed, acknowledged and receipted, over real daphne
processes on loopback.

    .venv/bin/python bench/chat_bench.py                      # the whole matrix (a few minutes)
    .venv/bin/python bench/chat_bench.py --backend sqlite --processes 1 --pairs 500 --messages 20
    .venv/bin/python bench/chat_bench.py --backend mariadb --processes 2 --rate 500 --duration 10

Prints delivered messages per second (wall clock and per server CPU-second), end-to-end
latency percentiles (send frame written -> message frame read by the recipient), errors,
server memory per idle connection, and the same closed-loop load against a bare Channels
echo consumer (bench/echo_asgi.py) for a ratio.

With --devices D (the matrix runs D = 3 too), every user has D devices, each with its own socket:
the sender's device 1 sends each message as a version-2 `send` (docs/PROTOCOL.md section 17)
with a copy for each of the recipient's D devices and for its own D - 1 other devices, and every
copy is received and acknowledged by its device; "copies" counts those device deliveries.

Bounded on purpose: loopback only, at most 2,000 sockets and --timeout seconds per run.
The servers run with RATE_LIMITS_ENABLED=false; users and contacts are created directly in
a fresh database (`msg_chat_bench` on MariaDB, a temporary SQLite file otherwise) through the
accounts and contacts services, not over HTTP (PBKDF2 for a thousand sign-ups would dominate).
"""

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
DAPHNE = str(Path(sys.executable).with_name("daphne"))
HOST = "127.0.0.1"
MAX_SOCKETS = 2000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TARGETS = {
    "per_cpu_sqlite": 1000,
    "per_cpu_mariadb": 800,
    "echo_ratio": 0.2,
    "p50_ms": 10,
    "p99_ms": 50,
    "scale_ratio": 0.9,
    "idle_kb": 40,
    "device_ratio": 0.8,
}
# The matrix's multi-device row: devices per user, and pairs (2 x DEVICES x pairs sockets).
MATRIX_DEVICES = 3
MATRIX_DEVICE_PAIRS = 150


# --- set-up (runs in a child process: Django is configured once per process) -------------------


def setup_main(pairs: int, devices: int) -> None:
    """Child mode: migrate, create 2*pairs users in accepted-contact pairs, each with
    `devices` devices, print their emails and one access token per device as JSON."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "messenger.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from rest_framework_simplejwt.tokens import AccessToken

    from accounts.models import Device, User
    from accounts.sessions import DEVICE_CLAIM
    from contacts import services as contacts_services

    call_command("migrate", verbosity=0, interactive=False)
    run = uuid.uuid4().hex[:8]
    users = User.objects.bulk_create(
        [User(email=f"bench-{run}-{n}@example.test", password="!") for n in range(2 * pairs)]
    )
    users = list(User.objects.filter(email__startswith=f"bench-{run}-").order_by("id"))
    Device.objects.bulk_create(
        [Device(user=user, device_id=number, name="bench") for user in users for number in range(1, devices + 1)]
    )

    def tokens(user) -> list[str]:
        out = []
        for number in range(1, devices + 1):
            token = AccessToken.for_user(user)
            token[DEVICE_CLAIM] = number
            out.append(str(token))
        return out

    out = []
    for n in range(pairs):
        sender, recipient = users[2 * n], users[2 * n + 1]
        request = contacts_services.contact_request_send(requester=sender, email=recipient.email)
        contacts_services.contact_request_answer(recipient=recipient, request_id=request.id, action="accept")
        out.append([[sender.email, tokens(sender)], [recipient.email, tokens(recipient)]])
    json.dump(out, sys.stdout)


# --- servers -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def base_env(backend: str, database: str) -> dict:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="messenger.settings",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(48),
        JWT_SIGNING_KEY=secrets.token_urlsafe(48),
        PASSWORD_PEPPER=secrets.token_urlsafe(48),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        RATE_LIMITS_ENABLED="false",
        ACCESS_TOKEN_MINUTES="120",
        LOG_LEVEL="WARNING",
        DATABASE_URL=database,
        REDIS_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6") if backend == "mariadb" else "",
    )
    return env


def fresh_database(backend: str) -> str:
    if backend == "sqlite":
        path = Path(tempfile.mkdtemp(prefix="chat-bench-")) / "bench.sqlite3"
        return f"sqlite:///{path}"
    import MySQLdb

    url = os.environ.get("BENCH_MARIADB_URL", "mysql://root@127.0.0.1:3306/msg_chat_bench")
    name = url.rsplit("/", 1)[1]
    conn = MySQLdb.connect(host="127.0.0.1", user="root", port=3306)
    cursor = conn.cursor()
    cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    conn.close()
    return url


@dataclass
class Server:
    port: int
    process: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0


def start_server(env: dict, app: str) -> Server:
    port = free_port()
    log = open(f"/tmp/chat-bench-{port}.log", "wb")  # lives as long as the server
    command = [DAPHNE, "-v", "0", "-b", HOST, "-p", str(port), app]
    if os.environ.get("BENCH_SERVER_SCRIPT"):
        # A profiling wrapper: `script PORT` serves messenger.asgi, is sent SIGUSR2 when the
        # load starts (after the connects) and SIGUSR1 before being stopped (dump the stats).
        command = [PYTHON, os.environ["BENCH_SERVER_SCRIPT"], str(port)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited, see /tmp/chat-bench-{port}.log")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.2):
            return Server(port, process)
        time.sleep(0.1)
    raise RuntimeError("daphne did not start")


def stop_server(server: Server) -> None:
    if os.environ.get("BENCH_SERVER_SCRIPT"):
        server.process.send_signal(signal.SIGUSR1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.process.wait(30)
    server.process.terminate()
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()


# --- clients -----------------------------------------------------------------------------------


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    sent_at: dict[str, float] = field(default_factory=dict)
    delivered: int = 0
    received: int = 0
    errors: int = 0
    duplicates: int = 0  # a message shown twice or a receipt for an id already receipted
    seen_messages: set = field(default_factory=set)
    seen_receipts: set = field(default_factory=set)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int = 0


class Client:
    def __init__(self, url: str, token: str | None, stats: Stats, echo: bool = False, devices: int = 1):
        self.url, self.token, self.stats, self.echo = url, token, stats, echo
        self.devices = devices  # of each user: above 1, sends are version 2 (a copy per device)
        self.sends = False  # this device sends (and counts the receipts)
        self.ws = None
        self.ready = asyncio.Event()
        self.window: asyncio.Semaphore | None = None
        self._acks: list[int] = []
        self._ack_scheduled = False

    async def open(self) -> None:
        from websockets.asyncio.client import connect

        # The server admits only its own origin: the same host and port as the socket's URL.
        headers = {"Origin": "http://" + urlsplit(self.url).netloc}
        if self.token:
            headers["Cookie"] = f"access_token={self.token}"
        self.ws = await connect(self.url, additional_headers=headers, compression=None, proxy=None, max_queue=None)
        self.reader = asyncio.create_task(self._read())
        if self.echo:
            self.ready.set()

    async def _read(self) -> None:
        stats = self.stats
        try:
            async for raw in self.ws:
                frame = json.loads(raw)
                kind = frame["type"]
                if kind == "message" or self.echo:
                    key = frame["client_id"]
                    started = stats.sent_at.pop(key, None)
                    if started is not None:
                        stats.latencies.append(time.perf_counter() - started)
                    stats.received += 1
                    if self.echo:
                        self._delivered(1)
                    else:
                        if frame["id"] in stats.seen_messages:
                            stats.duplicates += 1
                        stats.seen_messages.add(frame["id"])
                        self._acks.append(frame["id"])
                        if not self._ack_scheduled:
                            # Ack what arrived together in one frame (one DB transaction).
                            self._ack_scheduled = True
                            asyncio.get_running_loop().call_soon(self._flush_acks)
                elif kind == "delivered" and self.sends:
                    # Receipts reach every device of the sender; the sending one counts them.
                    fresh = [i for i in frame["ids"] if i not in stats.seen_receipts]
                    stats.duplicates += len(frame["ids"]) - len(fresh)
                    stats.seen_receipts.update(fresh)
                    self._delivered(len(fresh))
                elif kind == "queue_empty":
                    self.ready.set()
                elif kind == "error":
                    stats.errors += 1
        except Exception:
            stats.errors += 1

    def _delivered(self, count: int) -> None:
        self.stats.delivered += count
        if self.window is not None:
            for _ in range(count):
                self.window.release()
        if self.stats.delivered >= self.stats.expected:
            self.stats.done.set()

    def _flush_acks(self) -> None:
        ids, self._acks, self._ack_scheduled = self._acks, [], False
        background(self.ws.send(json.dumps({"type": "ack", "ids": ids})))

    async def send(self, to: str) -> None:
        client_id = str(uuid.uuid4())
        if self.echo:
            frame = {"type": "send", "client_id": client_id, "to": to, "kind": "message", "body": BODY, "id": 0}
        elif self.devices > 1:
            copy = {"kind": "message", "body": BODY}
            frame = {
                "type": "send",
                "client_id": client_id,
                "to": to,
                "copies": [{"device": n, **copy} for n in range(1, self.devices + 1)],
                "own": [{"device": n, **copy} for n in range(2, self.devices + 1)],
            }
        else:
            frame = {"type": "send", "client_id": client_id, "to": to, "kind": "message", "body": BODY}
        self.stats.sent_at[client_id] = time.perf_counter()
        await self.ws.send(json.dumps(frame))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        self.reader.cancel()


_background: set[asyncio.Task] = set()


def _forget(task: asyncio.Task) -> None:
    _background.discard(task)
    if not task.cancelled():
        task.exception()  # a send racing the final close; counted nowhere, not worth a traceback


def background(coroutine) -> None:
    task = asyncio.ensure_future(coroutine)
    _background.add(task)
    task.add_done_callback(_forget)


# A typical short Double Ratchet envelope: header + ~60 bytes of text, base64.
BODY = "A" * 256


async def connect_all(clients: list[Client], concurrency: int = 50) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(client: Client) -> None:
        async with gate:
            await client.open()
            await asyncio.wait_for(client.ready.wait(), 30)

    await asyncio.gather(*(one(c) for c in clients))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def run_load(
    servers: list[Server],
    pairs: list,
    *,
    path: str,
    echo: bool,
    messages: int,
    inflight: int,
    rate: float | None,
    duration: float,
    timeout: float,
) -> dict:
    stats = Stats()
    senders, others = [], []
    for n, ((_, sender_tokens), (recipient_email, recipient_tokens)) in enumerate(pairs):
        # With two processes every pair crosses them: sender on one, recipient on the other.
        sender_url = f"ws://{HOST}:{servers[n % len(servers)].port}{path}"
        recipient_url = f"ws://{HOST}:{servers[(n + 1) % len(servers)].port}{path}"
        devices = len(sender_tokens)
        sender = Client(sender_url, sender_tokens[0], stats, echo, devices)
        sender.sends = True
        senders.append((sender, recipient_email))
        if not echo:
            # The sender's other devices receive its own copies; every recipient device its copy.
            others += [Client(sender_url, token, stats) for token in sender_tokens[1:]]
            others += [Client(recipient_url, token, stats) for token in recipient_tokens]
    clients = [c for c, _ in senders] + others
    rss_before = sum(s.rss_kb() for s in servers)
    await connect_all(clients)
    await asyncio.sleep(1.0)
    rss_idle = sum(s.rss_kb() for s in servers)
    result = {"sockets": len(clients), "idle_kb_per_socket": (rss_idle - rss_before) / len(clients)}

    window = max(1, inflight // len(senders))
    for client, _ in senders:
        client.window = asyncio.Semaphore(window)

    if os.environ.get("BENCH_SERVER_SCRIPT"):
        for server in servers:  # a profiling wrapper starts measuring with the load
            server.process.send_signal(signal.SIGUSR2)
    cpu0 = sum(s.cpu_seconds() for s in servers)
    own0 = time.process_time()
    t0 = time.perf_counter()
    if rate is None:
        stats.expected = messages * len(senders)

        async def closed_loop(client: Client, to: str) -> None:
            for _ in range(messages):
                await client.window.acquire()
                await client.send(to)

        tasks = [asyncio.create_task(closed_loop(c, to)) for c, to in senders]
    else:
        total = int(rate * duration)
        stats.expected = total

        async def open_loop() -> None:
            # Open loop: sends are scheduled by the clock, not by replies.
            tick = 0.005
            per_tick = rate * tick
            owed = 0.0
            n = 0
            next_at = time.perf_counter()
            while n < total:
                owed += per_tick
                while owed >= 1 and n < total:
                    client, to = senders[n % len(senders)]
                    background(client.send(to))
                    owed -= 1
                    n += 1
                next_at += tick
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

        for client, _ in senders:
            client.window = None
        tasks = [asyncio.create_task(open_loop())]
    try:
        await asyncio.wait_for(stats.done.wait(), timeout)
    except TimeoutError:
        stats.errors += stats.expected - stats.delivered
    elapsed = time.perf_counter() - t0
    cpu = sum(s.cpu_seconds() for s in servers) - cpu0
    own = time.process_time() - own0
    for task in tasks:
        task.cancel()
    result.update(
        delivered=stats.delivered,
        seconds=elapsed,
        per_second=stats.delivered / elapsed,
        server_cpu_seconds=cpu,
        per_cpu_second=stats.delivered / cpu if cpu else float("nan"),
        client_cpu_seconds=own,
        p50_ms=percentile(stats.latencies, 50) * 1000,
        p95_ms=percentile(stats.latencies, 95) * 1000,
        p99_ms=percentile(stats.latencies, 99) * 1000,
        errors=stats.errors,
        duplicates=stats.duplicates,
        copies=stats.received,
        copies_per_cpu_second=stats.received / cpu if cpu else float("nan"),
        server_rss_mb=sum(s.rss_kb() for s in servers) / 1024,
    )
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    return result


def run_scenario(
    name: str, *, backend: str, processes: int, pairs: int, echo: bool = False, devices: int = 1, **load
) -> dict:
    if 2 * pairs * devices > MAX_SOCKETS:
        raise SystemExit(f"at most {MAX_SOCKETS} sockets")
    database = fresh_database(backend)
    env = base_env(backend, database)
    if echo:
        users = [[[f"echo{n}", [None]], [f"echo{n}", [None]]] for n in range(pairs)]
    else:
        child = subprocess.run(
            [PYTHON, __file__, "_setup", str(pairs), str(devices)],
            cwd=ROOT,
            env={**env, "REDIS_URL": ""},
            capture_output=True,
            text=True,
        )
        if child.returncode:
            raise SystemExit(f"set-up failed:\n{child.stderr[-3000:]}")
        users = json.loads(child.stdout)
    app = "bench.echo_asgi:application" if echo else "messenger.asgi:application"
    servers = [start_server(env, app) for _ in range(processes)]
    try:
        time.sleep(0.5)
        result = asyncio.run(run_load(servers, users, path="/ws/echo/" if echo else "/ws/chat/", echo=echo, **load))
    finally:
        for server in servers:
            stop_server(server)
    result.update(name=name, backend=backend, processes=processes, devices=devices)
    print_result(result)
    return result


def print_result(r: dict) -> None:
    print(
        f"{r['name']:<34} {r['sockets']:>5} sockets  {r['delivered']:>6} msgs in {r['seconds']:5.1f}s  "
        f"{r['per_second']:7.0f}/s  {r['per_cpu_second']:7.0f}/server-CPU-s  "
        f"p50 {r['p50_ms']:6.1f} p95 {r['p95_ms']:6.1f} p99 {r['p99_ms']:6.1f} ms  "
        f"errors {r['errors']} dup {r['duplicates']}  "
        + (f"copies {r['copies']} ({r['copies_per_cpu_second']:.0f}/server-CPU-s)  " if r["devices"] > 1 else "")
        + f"idle {r['idle_kb_per_socket']:5.1f} KB/socket  rss {r['server_rss_mb']:5.0f} MB  "
        f"(server CPU {r['server_cpu_seconds']:.1f}s, client CPU {r['client_cpu_seconds']:.1f}s)",
        flush=True,
    )


def median_run(runs: list[dict]) -> dict:
    """The run with the median throughput per server CPU-second."""
    return sorted(runs, key=lambda r: r["per_cpu_second"])[len(runs) // 2]


def suite(args) -> None:
    common = {"duration": args.duration, "timeout": args.timeout}
    big, small = args.pairs, max(1, args.pairs // 10)
    closed = {"messages": args.messages, "inflight": args.inflight, "rate": None, **common}
    results = {}
    results["echo"] = run_scenario(
        "echo (bare Channels)", backend="sqlite", processes=1, pairs=big, echo=True, **closed
    )
    # The 100- and 1,000-socket runs are a couple of CPU-seconds each, and the machine's other
    # load moves single runs by +-15 %: they alternate, --repeat times, and the median run of
    # each counts (for the ratio and for the SQLite throughput).
    smalls, bigs = [], []
    for _ in range(args.repeat):
        smalls.append(
            run_scenario(
                "sqlite, 1 process, 100 sockets",
                backend="sqlite",
                processes=1,
                pairs=small,
                **{**closed, "messages": args.messages * 10},
            )
        )
        bigs.append(run_scenario("sqlite, 1 process", backend="sqlite", processes=1, pairs=big, **closed))
    results["sqlite_small"], results["sqlite"] = median_run(smalls), median_run(bigs)
    results["sqlite_latency"] = run_scenario(
        f"sqlite, 1 process, open loop {args.rate:.0f}/s",
        backend="sqlite",
        processes=1,
        pairs=big,
        messages=0,
        inflight=0,
        rate=args.rate,
        **common,
    )
    results["sqlite_low"] = run_scenario(
        f"sqlite, 1 process, open loop {args.low_rate:.0f}/s",
        backend="sqlite",
        processes=1,
        pairs=big,
        messages=0,
        inflight=0,
        rate=args.low_rate,
        **common,
    )
    results["devices"] = run_scenario(
        f"sqlite, 1 process, {MATRIX_DEVICES} devices/user",
        backend="sqlite",
        processes=1,
        pairs=MATRIX_DEVICE_PAIRS,
        devices=MATRIX_DEVICES,
        **closed,
    )
    if not args.skip_mariadb:
        results["mariadb"] = run_scenario(
            "mariadb+redis, 1 process", backend="mariadb", processes=1, pairs=big, **closed
        )
        results["mariadb_latency"] = run_scenario(
            f"mariadb+redis, 1 process, open loop {args.rate:.0f}/s",
            backend="mariadb",
            processes=1,
            pairs=big,
            messages=0,
            inflight=0,
            rate=args.rate,
            **common,
        )
        results["mariadb2"] = run_scenario(
            "mariadb+redis, 2 processes", backend="mariadb", processes=2, pairs=big, **closed
        )
    print()
    print("Targets (one server process, 1,000 sockets):")
    check = [
        ("delivered/server-CPU-s, SQLite", results["sqlite"]["per_cpu_second"], ">=", TARGETS["per_cpu_sqlite"]),
        (
            "x bare echo (per server CPU-s)",
            results["sqlite"]["per_cpu_second"] / results["echo"]["per_cpu_second"],
            ">=",
            TARGETS["echo_ratio"],
        ),
        (
            f"p50 ms at {args.rate:.0f}/s open loop, SQLite",
            results["sqlite_latency"]["p50_ms"],
            "<=",
            TARGETS["p50_ms"],
        ),
        (
            f"p99 ms at {args.rate:.0f}/s open loop, SQLite",
            results["sqlite_latency"]["p99_ms"],
            "<=",
            TARGETS["p99_ms"],
        ),
        (
            "1,000 vs 100 sockets (per CPU-s)",
            results["sqlite"]["per_cpu_second"] / results["sqlite_small"]["per_cpu_second"],
            ">=",
            TARGETS["scale_ratio"],
        ),
        ("KB per idle socket", results["sqlite"]["idle_kb_per_socket"], "<=", TARGETS["idle_kb"]),
        (
            f"{MATRIX_DEVICES} devices: copies vs 1 device (per CPU-s)",
            results["devices"]["copies_per_cpu_second"] / results["sqlite"]["per_cpu_second"],
            ">=",
            TARGETS["device_ratio"],
        ),
    ]
    if "mariadb" in results:
        check.insert(
            1,
            ("delivered/server-CPU-s, MariaDB", results["mariadb"]["per_cpu_second"], ">=", TARGETS["per_cpu_mariadb"]),
        )
        check.append(
            (
                f"p50 ms at {args.rate:.0f}/s, MariaDB+Redis",
                results["mariadb_latency"]["p50_ms"],
                "<=",
                TARGETS["p50_ms"],
            )
        )
        check.append(
            (
                f"p99 ms at {args.rate:.0f}/s, MariaDB+Redis",
                results["mariadb_latency"]["p99_ms"],
                "<=",
                TARGETS["p99_ms"],
            )
        )
    for label, value, op, target in check:
        ok = value >= target if op == ">=" else value <= target
        print(f"  {label:<44} {value:9.2f}  (target {op} {target})  {'ok' if ok else 'BELOW TARGET'}")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "_setup":
        setup_main(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "mariadb"], help="one run instead of the whole matrix")
    parser.add_argument("--processes", type=int, default=1, choices=[1, 2, 3, 4])
    parser.add_argument("--pairs", type=int, default=500, help="sender/recipient pairs (sockets = 2 x pairs)")
    parser.add_argument("--devices", type=int, default=1, help="devices per user (sockets = 2 x pairs x devices)")
    parser.add_argument("--messages", type=int, default=10, help="envelopes per sender (closed loop)")
    parser.add_argument("--inflight", type=int, default=500, help="closed loop: envelopes in flight in total")
    parser.add_argument("--rate", type=float, default=500, help="open loop: offered envelopes per second")
    parser.add_argument("--low-rate", type=float, default=100, help="matrix: a second, lighter open-loop rate")
    parser.add_argument("--duration", type=float, default=10, help="open loop: seconds of offered load")
    parser.add_argument(
        "--repeat", type=int, default=3, help="matrix: runs of the 100- and 1,000-socket SQLite loads (median counts)"
    )
    parser.add_argument("--timeout", type=float, default=120, help="give up on a run after this many seconds")
    parser.add_argument("--open-loop", action="store_true", help="with --backend: offer --rate instead of closed loop")
    parser.add_argument("--echo", action="store_true", help="with --backend: the bare echo consumer")
    parser.add_argument("--skip-mariadb", action="store_true", help="matrix without MariaDB + Redis")
    args = parser.parse_args()
    if not 1 <= args.repeat <= 9:
        parser.error("--repeat must be between 1 and 9")
    if not 1 <= args.devices <= 5:
        parser.error("--devices must be between 1 and 5 (DEVICES_PER_ACCOUNT_MAX)")
    if args.backend is None:
        suite(args)
        return
    load = {"duration": args.duration, "timeout": args.timeout}
    if args.open_loop:
        load.update(messages=0, inflight=0, rate=args.rate)
    else:
        load.update(messages=args.messages, inflight=args.inflight, rate=None)
    run_scenario(
        f"{'echo' if args.echo else args.backend}, {args.processes} process(es)",
        backend=args.backend,
        processes=args.processes,
        pairs=args.pairs,
        echo=args.echo,
        devices=args.devices,
        **load,
    )


if __name__ == "__main__":
    main()
