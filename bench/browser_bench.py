#!/usr/bin/env python
"""The browser client at scale (issue #14), measured in real Chromium (Debian's `chromium`, driven
by Playwright) against one daphne process on loopback (SQLite, RATE_LIMITS_ENABLED=false, the test
suite's fast password hasher: registration is not what is measured).

    .venv/bin/python bench/browser_bench.py     # backlogs 2,000 and 10,000; history 30 / 2,000 / 10,000
    .venv/bin/python bench/browser_bench.py --backlogs 300 2000 --opened-after 2000 --samples 5

How the messages get there: every one is real. A Python client (messenger_client, the terminal
client's SDK) is the sender: it encrypts each message with X3DH + Double Ratchet and sends it over
its socket, one after the other, as a person's terminal would; the browser user decrypts and stores
each one. No IndexedDB is seeded: the history of the flows below is the backlog received before.

Figures, per size:
- backlog, conversation open: the browser user has the conversation open and goes offline (the
  browser context's network off); the sender sends N; the network comes back. Time from then until
  the last message is painted, until the server has every one acknowledged, until every one is read
  (server database), and the main thread's long tasks (PerformanceObserver "longtask") meanwhile.
- backlog, opened afterwards: N arrive while the browser user has no conversation open; once the
  server has all acknowledged and the page is quiet, a click on the contact: time to the latest
  message painted, long tasks in the 3 s after the click.
- history flows (the conversations left by the runs above, and one of 30): an incoming message,
  send() called -> painted (p50 of --samples) and long-task time per message; an own message,
  Enter -> painted / -> "Sent" shown (p50); typing 40 characters (50 ms apart, 2.0 s ideal) during a
  burst of 30 incoming at 10/s; reload -> ready (signed in, online, contacts shown); click on the
  contact -> latest painted; DOM elements in the page then (the conversation just opened).

"Painted" is the first animation frame after the element was in the page (a MutationObserver
notes it, requestAnimationFrame notes the frame). Times of the page and of this process compare
through the wall clock (performance.timeOrigin + performance.now()). Bounded: loopback only, at most
20,000 messages per size, --timeout seconds per wait.
"""

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from messenger_client import Client  # noqa: E402
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, LiveServer  # noqa: E402
from tests.live_server import migrate, server_env, start_daphne, stop_daphne  # noqa: E402

MAX_MESSAGES = 20_000
PASSPHRASE = "bench passphrase"
PASSWORD = "bench password 0123456789"

# In every page: long tasks, and a watch on the message list (installed once the app is ready).
INSTRUMENT = """
(() => {
  const now = () => performance.timeOrigin + performance.now();
  const bench = (window.__bench = { longTasks: [], seen: new Map(), enterAt: 0 });
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      bench.longTasks.push([performance.timeOrigin + entry.startTime, entry.duration]);
    }
  }).observe({ type: "longtask", buffered: true });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.target.id === "composer-input") bench.enterAt = now();
  }, true);
  let pending = [];
  const frame = () => {
    const at = now();
    for (const entry of pending) if (!entry.painted) entry.painted = at;
    pending = [];
  };
  const note = (li, at) => {
    const text = li.querySelector(".text");
    if (!text || !text.textContent.startsWith("probe ")) return;
    const entry = bench.seen.get(text.textContent) || {};
    if (!entry.added) entry.added = at;
    if (li.dataset.status === "sent" && !entry.sent) entry.sent = at;
    bench.seen.set(text.textContent, entry);
    if (!entry.painted) {
      if (!pending.length) requestAnimationFrame(frame);
      pending.push(entry);
    }
  };
  bench.watch = () => {
    const list = document.getElementById("messages");
    if (!list) return;
    new MutationObserver((records) => {
      const at = now();
      for (const record of records) {
        if (record.type === "childList") {
          for (const node of record.addedNodes) {
            if (node.classList && node.classList.contains("message")) note(node, at);
          }
        } else if (record.target.classList.contains("message")) note(record.target, at);
      }
    }).observe(list, { childList: true, subtree: true, attributes: true, attributeFilter: ["data-status"] });
  };
  window.addEventListener("DOMContentLoaded", () => {
    bench.watch();
    // Ready: signed in, keys checked, the socket online (what tests/browser/helpers.py waits for).
    const ready = () =>
      document.body.dataset.ready === "true" && document.getElementById("connection")?.textContent === "Online";
    const watcher = new MutationObserver(() => {
      if (!bench.readyAt && ready()) {
        bench.readyAt = now();
        watcher.disconnect();
      }
    });
    const all = { subtree: true, childList: true, attributes: true, characterData: true };
    watcher.observe(document.documentElement, all);
  });
})();
"""


PAINTED_AT = "(t) => { const e = window.__bench.seen.get(t); return e ? e.painted || null : null; }"
SENT_AT = "(t) => window.__bench.seen.get(t)?.sent || null"
OWN_TIMES = "(t) => { const e = window.__bench.seen.get(t); return [window.__bench.enterAt, e.painted, e.sent]; }"


class Sender:
    """The Python SDK on its own event loop in a thread (Playwright's sync API owns the main one)."""

    def __init__(self, server_url: str, path: Path, email: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.email = email
        self.client: Client = self.run(self._open(server_url, str(path)))
        self.run(self.client.register(email, PASSWORD))

    async def _open(self, server_url: str, path: str) -> Client:
        return Client.open(server_url, path, PASSPHRASE)

    def run(self, coroutine, timeout: float = 600):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def send_many(self, to: str, texts: list[str]) -> None:
        async def send():
            await self.client.connect()
            for text in texts:
                await self.client.send(to, text)

        self.run(send(), timeout=3600)

    def send_paced(self, to: str, texts: list[str], every: float) -> threading.Thread:
        """Sends `texts` `every` seconds apart, in the background."""

        async def send():
            start = time.monotonic()
            for i, text in enumerate(texts):
                await asyncio.sleep(max(0.0, start + i * every - time.monotonic()))
                await self.client.send(to, text)

        thread = threading.Thread(target=lambda: self.run(send()))
        thread.start()
        return thread

    def close(self) -> None:
        self.run(self.client.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class Bench:
    def __init__(self, browser, server: LiveServer, timeout: float, workdir: Path) -> None:
        self.browser = browser
        self.server = server
        self.timeout = timeout
        self.workdir = workdir
        self.count = 0

    # --- people ------------------------------------------------------------------------------

    def pair(self, name: str):
        """A browser user and a Python sender, contacts of each other; the browser is ready."""
        from playwright.sync_api import expect

        from tests.browser.helpers import Person

        self.count += 1
        person = Person(browser=self.browser, server=self.server, name=f"{name}{self.count}b")
        person.context.add_init_script(script=INSTRUMENT)
        person.register()
        email = f"{name}{self.count}s@example.test"
        sender = Sender(self.server.url, self.workdir / f"{name}{self.count}.sqlite3", email)
        person.request_contact(SimpleNamespace(email=sender.email))
        sender.run(sender.client.answer_request(person.email))
        contact = SimpleNamespace(email=sender.email)
        expect(person.contact_button(contact)).to_be_visible()
        return person, sender, contact

    # --- measuring ------------------------------------------------------------------------------

    def envelopes(self, sender: Sender) -> tuple[int, int, int]:
        """(sent, acknowledged, read) envelopes of `sender`, from the server's database."""
        with sqlite3.connect(self.server.db_path, timeout=30) as db:
            return db.execute(
                "SELECT count(*), count(e.delivered_at), count(e.read_at) FROM chat_envelope e"
                " JOIN accounts_user u ON u.id = e.sender_id WHERE u.email = ?",
                (sender.email,),
            ).fetchone()

    def wait(self, condition, what: str, page=None, poll: float = 0.02) -> float:
        """Polls `condition()` until true; returns the wall-clock time it was first seen true."""
        deadline = time.monotonic() + self.timeout
        while True:
            if condition():
                return time.time()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not within {self.timeout:.0f} s")
            time.sleep(poll)

    @staticmethod
    def painted(page, text: str):
        return page.evaluate(PAINTED_AT, text)

    def wait_painted(self, page, text: str) -> float:
        found = {}

        def check():
            found["at"] = self.painted(page, text)
            return found["at"] is not None

        self.wait(check, f"{text!r} painted", poll=0.01)
        return found["at"] / 1000

    @staticmethod
    def long_tasks(page, start: float, end: float) -> list[float]:
        """Durations (ms) of the page's long tasks that started between `start` and `end` (s)."""
        tasks = page.evaluate("() => window.__bench.longTasks")
        return [duration for at, duration in tasks if start * 1000 <= at <= end * 1000]

    @staticmethod
    def dom_elements(page) -> int:
        return page.evaluate("() => document.getElementsByTagName('*').length")

    def quiet(self, page, seconds: float = 1.0) -> None:
        """Waits until the page had no long task for `seconds`."""
        while True:
            time.sleep(seconds)
            tasks = page.evaluate("() => window.__bench.longTasks")
            if not tasks or tasks[-1][0] + tasks[-1][1] < (time.time() - seconds) * 1000:
                return

    # --- the scenarios ------------------------------------------------------------------------------

    def backlog_open(self, size: int):
        """The conversation is open; the browser is offline while `size` messages are sent."""
        person, sender, contact = self.pair("open")
        page = person.page
        person.open_chat(contact)
        person.context.set_offline(True)
        from playwright.sync_api import expect

        expect(page.locator("#connection")).not_to_have_text("Online")
        texts = [f"backlog {i}" for i in range(size - 1)] + ["probe last of the backlog"]
        sender.send_many(person.email, texts)
        assert self.envelopes(sender)[1] == 0, "the browser was offline: nothing may be acknowledged yet"
        start = time.time()
        person.context.set_offline(False)
        painted = self.wait_painted(page, texts[-1])
        acked = self.wait(lambda: self.envelopes(sender)[1] == size, "all acknowledged", poll=0.1)
        read = self.wait(lambda: self.envelopes(sender)[2] == size, "all read", poll=0.1)
        tasks = self.long_tasks(page, start, read)
        return {
            "painted": painted - start,
            "acked": acked - start,
            "read": read - start,
            "long": len([t for t in tasks if t > 100]),
            "max": max(tasks, default=0.0),
            "person": person,
            "sender": sender,
            "contact": contact,
        }

    def backlog_then_open(self, size: int):
        """`size` messages arrive with no conversation open; then a click on the contact."""
        person, sender, contact = self.pair("later")
        page = person.page
        texts = [f"backlog {i}" for i in range(size - 1)] + ["probe last of the backlog"]
        sender.send_many(person.email, texts)
        self.wait(lambda: self.envelopes(sender)[1] == size, "all acknowledged", poll=0.1)
        self.quiet(page)
        start = time.time()
        person.contact_button(contact).click()
        painted = self.wait_painted(page, texts[-1])
        time.sleep(3)
        tasks = self.long_tasks(page, start, start + 3)
        self.wait(lambda: self.envelopes(sender)[2] == size, "all read", poll=0.1)
        result = {"painted": painted - start, "long": len([t for t in tasks if t > 100])}
        result["max"] = max(tasks, default=0.0)
        person.close()
        sender.close()
        return result

    def flows(self, person, sender, contact, samples: int):
        """The everyday flows in a conversation with history."""
        page = person.page
        self.quiet(page)
        out = {}

        # Incoming: send() called -> painted.
        incoming, long_per = [], []
        for i in range(samples):
            text = f"probe incoming {i} {time.time()}"
            start = time.time()
            sender.run(sender.client.send(person.email, text))
            at = self.wait_painted(page, text)
            incoming.append(at - start)
            time.sleep(0.3)
            long_per.append(sum(self.long_tasks(page, start, time.time())))
        out["incoming"] = statistics.median(incoming)
        out["incoming_long"] = statistics.mean(long_per)

        # Own: Enter -> painted / -> "Sent".
        box = page.get_by_label("Message", exact=True)
        painted, sent = [], []
        for i in range(samples):
            text = f"probe own {i} {time.time()}"
            box.fill(text)
            box.press("Enter")
            self.wait(lambda t=text: page.evaluate(SENT_AT, t) is not None, "Sent shown")
            entry = page.evaluate(OWN_TIMES, text)
            painted.append(entry[1] - entry[0])
            sent.append(entry[2] - entry[0])
            time.sleep(0.2)
        out["own_painted"] = statistics.median(painted) / 1000
        out["own_sent"] = statistics.median(sent) / 1000

        # Typing 40 characters, alone (what the key presses cost here), then while 30 messages
        # arrive at 10/s.
        box.click()
        start = time.monotonic()
        page.keyboard.type("typing forty characters with no burst!!", delay=50)
        out["typing_alone"] = time.monotonic() - start
        box.fill("")
        burst = sender.send_paced(person.email, [f"probe burst {i} {time.time()}" for i in range(30)], 0.1)
        time.sleep(0.3)
        box.click()
        start = time.monotonic()
        page.keyboard.type("typing forty characters during a burst!", delay=50)
        out["typing"] = time.monotonic() - start
        burst.join()
        box.fill("")
        self.quiet(page)

        # Reload -> ready, then click the contact -> latest painted.
        start = time.time()
        page.reload()
        person.wait_ready()
        out["reload"] = page.evaluate("() => window.__bench.readyAt") / 1000 - start
        from playwright.sync_api import expect

        expect(person.contact_button(contact)).to_be_visible()
        self.quiet(page)
        text = f"probe latest {time.time()}"
        sender.run(sender.client.send(person.email, text))
        self.wait(lambda: self.envelopes(sender)[1] == self.envelopes(sender)[0], "latest acknowledged", poll=0.05)
        self.quiet(page, 0.5)
        start = time.time()
        person.contact_button(contact).click()
        out["open"] = self.wait_painted(page, text) - start
        self.quiet(page)
        out["dom"] = self.dom_elements(page)
        return out


def fmt_s(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlogs", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--opened-after", type=int, nargs="+", default=[10000])
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    for size in args.backlogs + args.opened_after:
        if not 1 <= size <= MAX_MESSAGES:
            parser.error(f"sizes from 1 to {MAX_MESSAGES}")

    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=60_000)
    with tempfile.TemporaryDirectory(prefix="browser-bench-") as tmp:
        workdir = Path(tmp)
        env = server_env("bench", DATABASE_URL=f"sqlite:///{workdir / 'db.sqlite3'}", REDIS_URL="", LOG_LEVEL="WARNING")
        migrate(env)
        process, url, log = start_daphne(env, workdir / "server.log")
        server = LiveServer(url=url, db_path=workdir / "db.sqlite3", log_path=workdir / "server.log", process=process)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                bench = Bench(browser, server, args.timeout, workdir)
                run(bench, args)
                browser.close()
        finally:
            stop_daphne(process, log)


def run(bench: Bench, args) -> None:
    print("Backlog arriving with the conversation open (browser offline while it was sent):", flush=True)
    print(f"{'messages':>10} {'last painted':>14} {'all acked':>11} {'all read':>10}", end="")
    print(f" {'tasks > 100 ms':>15} {'longest task':>13}")
    histories = {}
    for size in args.backlogs:
        result = bench.backlog_open(size)
        print(
            f"{size:>10,} {fmt_s(result['painted']):>14} {fmt_s(result['acked']):>11} {fmt_s(result['read']):>10}"
            f" {result['long']:>15} {result['max']:>10.0f} ms",
            flush=True,
        )
        histories[size] = result

    print("\nBacklog that arrived with no conversation open, then a click on the contact:", flush=True)
    print(f"{'messages':>10} {'latest painted':>15} {'tasks > 100 ms':>15} {'longest task':>13}")
    for size in args.opened_after:
        result = bench.backlog_then_open(size)
        print(f"{size:>10,} {fmt_s(result['painted']):>15} {result['long']:>15} {result['max']:>10.0f} ms", flush=True)

    small = bench.backlog_open(30)
    histories = {30: small, **histories}
    rows = {}
    for size, result in sorted(histories.items()):
        rows[size] = bench.flows(result["person"], result["sender"], result["contact"], args.samples)
        result["person"].close()
        result["sender"].close()

    sizes = sorted(rows)
    print(f"\nWith history in the conversation (p50 of {args.samples} samples):", flush=True)
    print(f"{'flow':<58}" + "".join(f"{size:>12,}" for size in sizes))
    lines = [
        ("incoming message: send() -> painted", lambda r: fmt_s(r["incoming"])),
        ("main-thread long-task time per incoming message", lambda r: f"{r['incoming_long']:.0f} ms"),
        ("own message: Enter -> painted", lambda r: fmt_s(r["own_painted"])),
        ('own message: Enter -> "Sent" shown', lambda r: fmt_s(r["own_sent"])),
        ("typing 40 chars, 50 ms apart, nothing arriving", lambda r: fmt_s(r["typing_alone"])),
        ("typing 40 chars during 30 incoming at 10/s (2.0 s ideal)", lambda r: fmt_s(r["typing"])),
        ("reload -> ready", lambda r: fmt_s(r["reload"])),
        ("click contact -> latest painted", lambda r: fmt_s(r["open"])),
        ("DOM elements in the page (conversation just opened)", lambda r: f"{r['dom']:,}"),
    ]
    for label, cell in lines:
        print(f"{label:<58}" + "".join(f"{cell(rows[size]):>12}" for size in sizes), flush=True)


if __name__ == "__main__":
    main()
