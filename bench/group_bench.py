#!/usr/bin/env python
"""Group messages (docs/PROTOCOL.md section 23) under load: one group of --members members with
one device each, every member's socket open, over a real daphne process on loopback.

    .venv/bin/python bench/group_bench.py                 # SQLite; --backend mariadb for MariaDB + Redis
    .venv/bin/python bench/group_bench.py --members 100 --messages 300 --rate 10 --duration 20

Three runs, each on a fresh database:
1. 1:1 baseline: the closed-loop load of bench/chat_bench.py (--pairs pairs), for the server CPU
   of one delivered 1:1 message;
2. group, closed loop: members take turns sending group messages (--inflight in flight), every
   other member's device receives and acknowledges its copy: server CPU per group message and
   per delivered copy, and the ratio of a copy to a 1:1 message (target: at most 0.5);
3. group, open loop at --rate group messages per second for --duration seconds: the time from
   the `group_send` frame written to its `sent` answer (target: p99 under 50 ms at 10/s), and
   from the frame to the last member's copy.

The bodies are opaque to the server (it never decrypts), so the load sends fixed strings of the
size of a short sender-key message. Errors and duplicate copies are counted; both must be 0.
"""

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import chat_bench as cb  # noqa: E402  (the servers, databases and percentiles of the 1:1 bench)

TARGETS = {"copy_ratio": 0.5, "sent_p99_ms": 50}
# A sender-key message with ~60 bytes of text (9 + 80 + 32 + 64 bytes), base64.
BODY = "A" * 248


def setup_main(members: int) -> None:
    """Child mode: migrate, create the members (one device each), befriend the first with every
    other, create the group; print the group id and [email, token] per member as JSON."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "messenger.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from rest_framework_simplejwt.tokens import AccessToken

    from accounts.models import Device, User
    from accounts.sessions import DEVICE_CLAIM
    from contacts import services as contacts_services
    from groups import services as groups_services

    call_command("migrate", verbosity=0, interactive=False)
    run = uuid.uuid4().hex[:8]
    User.objects.bulk_create([User(email=f"group-{run}-{n}@example.test", password="!") for n in range(members)])
    users = list(User.objects.filter(email__startswith=f"group-{run}-").order_by("id"))
    Device.objects.bulk_create([Device(user=user, device_id=1, name="bench") for user in users])
    creator = users[0]
    for other in users[1:]:
        request = contacts_services.contact_request_send(requester=creator, email=other.email)
        contacts_services.contact_request_answer(recipient=other, request_id=request.id, action="accept")
    group = groups_services.group_create(creator=creator, emails=[user.email for user in users[1:]])

    def token(user) -> str:
        access = AccessToken.for_user(user)
        access[DEVICE_CLAIM] = 1
        return str(access)

    json.dump({"group": str(group.uid), "members": [[user.email, token(user)] for user in users]}, sys.stdout)


@dataclass
class Stats:
    sent_latencies: list[float] = field(default_factory=list)
    spread_latencies: list[float] = field(default_factory=list)  # frame -> the last member's copy
    started: dict[str, float] = field(default_factory=dict)
    copies_left: dict[str, int] = field(default_factory=dict)
    copies: int = 0
    sent: int = 0
    errors: int = 0
    duplicates: int = 0
    seen: set = field(default_factory=set)
    expected_copies: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Member:
    def __init__(self, url: str, token: str, stats: Stats, group: str, others: int):
        self.url, self.token, self.stats, self.group, self.others = url, token, stats, group, others
        self.ready = asyncio.Event()
        self.window: asyncio.Semaphore | None = None
        self._acks: list[int] = []
        self._ack_scheduled = False

    async def open(self) -> None:
        from websockets.asyncio.client import connect

        headers = {"Origin": "http://" + urlsplit(self.url).netloc, "Cookie": f"access_token={self.token}"}
        self.ws = await connect(self.url, additional_headers=headers, compression=None, proxy=None, max_queue=None)
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        stats = self.stats
        try:
            async for raw in self.ws:
                frame = json.loads(raw)
                kind = frame["type"]
                if kind == "group_message":
                    if frame["id"] in stats.seen:
                        stats.duplicates += 1
                    stats.seen.add(frame["id"])
                    stats.copies += 1
                    key = frame["client_id"]
                    left = stats.copies_left.get(key, 0) - 1
                    stats.copies_left[key] = left
                    if left == 0 and key in stats.started:
                        stats.spread_latencies.append(time.perf_counter() - stats.started[key])
                    self._acks.append(frame["id"])
                    if not self._ack_scheduled:
                        self._ack_scheduled = True
                        asyncio.get_running_loop().call_soon(self._flush_acks)
                    if stats.copies >= stats.expected_copies:
                        stats.done.set()
                elif kind == "sent":
                    started = stats.started.get(frame["client_id"])
                    if started is not None:
                        stats.sent_latencies.append(time.perf_counter() - started)
                    stats.sent += 1
                    if self.window is not None:
                        self.window.release()
                elif kind == "queue_empty":
                    self.ready.set()
                elif kind == "error":
                    stats.errors += 1
        except Exception:
            stats.errors += 1

    def _flush_acks(self) -> None:
        ids, self._acks, self._ack_scheduled = self._acks, [], False
        cb.background(self.ws.send(json.dumps({"type": "ack", "ids": ids})))

    async def send(self) -> None:
        client_id = str(uuid.uuid4())
        frame = {"type": "group_send", "client_id": client_id, "group": self.group, "epoch": 1, "body": BODY}
        self.stats.copies_left[client_id] = self.others
        self.stats.started[client_id] = time.perf_counter()
        await self.ws.send(json.dumps(frame))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        self.reader.cancel()


async def group_load(
    server: cb.Server, setup: dict, *, messages: int, inflight: int, rate: float | None, duration: float, timeout: float
) -> dict:
    stats = Stats()
    url = f"ws://{cb.HOST}:{server.port}/ws/chat/"
    members = [Member(url, token, stats, setup["group"], len(setup["members"]) - 1) for _, token in setup["members"]]
    gate = asyncio.Semaphore(50)

    async def connect(member: Member) -> None:
        async with gate:
            await member.open()
            await asyncio.wait_for(member.ready.wait(), 30)

    await asyncio.gather(*(connect(m) for m in members))
    await asyncio.sleep(1.0)
    total = messages if rate is None else int(rate * duration)
    stats.expected_copies = total * (len(members) - 1)
    if os.environ.get("BENCH_SERVER_SCRIPT"):
        server.process.send_signal(signal.SIGUSR2)  # a profiling wrapper starts measuring now
    cpu0 = server.cpu_seconds()
    t0 = time.perf_counter()
    if rate is None:
        window = asyncio.Semaphore(inflight)
        for member in members:
            member.window = window

        async def closed_loop() -> None:
            for n in range(total):
                await window.acquire()
                await members[n % len(members)].send()

        tasks = [asyncio.create_task(closed_loop())]
    else:

        async def open_loop() -> None:
            interval = 1 / rate
            next_at = time.perf_counter()
            for n in range(total):
                cb.background(members[n % len(members)].send())
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

        tasks = [asyncio.create_task(open_loop())]
    try:
        await asyncio.wait_for(stats.done.wait(), timeout)
    except TimeoutError:
        stats.errors += stats.expected_copies - stats.copies
    elapsed = time.perf_counter() - t0
    cpu = server.cpu_seconds() - cpu0
    for task in tasks:
        task.cancel()
    await asyncio.gather(*(m.close() for m in members), return_exceptions=True)
    return {
        "members": len(members),
        "messages": total,
        "copies": stats.copies,
        "seconds": elapsed,
        "server_cpu_seconds": cpu,
        "cpu_ms_per_message": cpu / total * 1000 if total else float("nan"),
        "cpu_us_per_copy": cpu / stats.copies * 1e6 if stats.copies else float("nan"),
        "sent_p50_ms": cb.percentile(stats.sent_latencies, 50) * 1000,
        "sent_p99_ms": cb.percentile(stats.sent_latencies, 99) * 1000,
        "spread_p50_ms": cb.percentile(stats.spread_latencies, 50) * 1000,
        "spread_p99_ms": cb.percentile(stats.spread_latencies, 99) * 1000,
        "errors": stats.errors + (total - stats.sent),
        "duplicates": stats.duplicates,
    }


def run_group(backend: str, members: int, **load) -> dict:
    database = cb.fresh_database(backend)
    env = cb.base_env(backend, database)
    child = subprocess.run(
        [cb.PYTHON, __file__, "_setup", str(members)],
        cwd=ROOT,
        env={**env, "REDIS_URL": ""},
        capture_output=True,
        text=True,
    )
    if child.returncode:
        raise SystemExit(f"set-up failed:\n{child.stderr[-3000:]}")
    setup = json.loads(child.stdout)
    server = cb.start_server(env, "messenger.asgi:application")
    try:
        time.sleep(0.5)
        return asyncio.run(group_load(server, setup, **load))
    finally:
        cb.stop_server(server)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "_setup":
        setup_main(int(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "mariadb"], default="sqlite")
    parser.add_argument("--members", type=int, default=100, help="members of the group (sockets), at most 256")
    parser.add_argument("--messages", type=int, default=300, help="closed loop: group messages")
    parser.add_argument("--inflight", type=int, default=10, help="closed loop: group messages in flight")
    parser.add_argument("--pairs", type=int, default=100, help="1:1 baseline: sender/recipient pairs")
    parser.add_argument("--rate", type=float, default=10, help="open loop: group messages per second")
    parser.add_argument("--duration", type=float, default=20, help="open loop: seconds")
    parser.add_argument("--timeout", type=float, default=180)
    args = parser.parse_args()
    if not 2 <= args.members <= 256:
        parser.error("--members must be between 2 and 256 (GROUP_MEMBERS_MAX)")

    baseline = cb.run_scenario(
        f"1:1 baseline, {args.backend}",
        backend=args.backend,
        processes=1,
        pairs=args.pairs,
        messages=20,
        inflight=200,
        rate=None,
        duration=args.duration,
        timeout=args.timeout,
    )
    one_to_one_us = 1e6 / baseline["per_cpu_second"]
    common = {"duration": args.duration, "timeout": args.timeout}
    closed = run_group(args.backend, args.members, messages=args.messages, inflight=args.inflight, rate=None, **common)
    opened = run_group(args.backend, args.members, messages=0, inflight=0, rate=args.rate, **common)
    for name, r in (("group, closed loop", closed), (f"group, {args.rate:.0f} msgs/s", opened)):
        print(
            f"{name:<22} {r['members']} members  {r['messages']} msgs -> {r['copies']} copies in {r['seconds']:.1f}s  "
            f"server CPU {r['server_cpu_seconds']:.2f}s: {r['cpu_ms_per_message']:.2f} ms/msg, "
            f"{r['cpu_us_per_copy']:.0f} us/copy  sent p50 {r['sent_p50_ms']:.1f} p99 {r['sent_p99_ms']:.1f} ms  "
            f"last copy p50 {r['spread_p50_ms']:.1f} p99 {r['spread_p99_ms']:.1f} ms  "
            f"errors {r['errors']} dup {r['duplicates']}",
            flush=True,
        )
    print(f"1:1 message: {one_to_one_us:.0f} us of server CPU per delivered message")
    checks = [
        (
            "group copy / 1:1 message (server CPU)",
            closed["cpu_us_per_copy"] / one_to_one_us,
            "<=",
            TARGETS["copy_ratio"],
        ),
        (f"sent p99 ms at {args.rate:.0f} group msgs/s", opened["sent_p99_ms"], "<=", TARGETS["sent_p99_ms"]),
        (
            "errors + duplicates",
            closed["errors"] + closed["duplicates"] + opened["errors"] + opened["duplicates"],
            "<=",
            0,
        ),
    ]
    for label, value, op, target in checks:
        ok = value <= target
        print(f"  {label:<44} {value:9.2f}  (target {op} {target})  {'ok' if ok else 'BELOW TARGET'}")


if __name__ == "__main__":
    main()
