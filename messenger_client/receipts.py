"""Receipts, both ways (static/js/receipts.js): the ``ack`` of a stored envelope and the ``read``
of a shown one, sent again when the server could not apply them; the ``delivered``/``read``
pushes about our sent messages, and the question of where they stand, asked on every connect
(the pushes are at-most-once) or over REST.

Acks and reads name copy ids, receipts name message ids (docs/PROTOCOL.md section 17.3). A
``read`` from another device of the account arrives as ``read_elsewhere``: those received messages
are read here too, without a receipt of our own."""

from __future__ import annotations

import asyncio
import random
import time

from .http import HttpApi
from .store import Store
from .tasks import Background
from .transport import ChatSocket

RECEIPTS_MAX_IDS = 1000  # the server answers about this many envelopes per question
# An `ack`/`read` the server could not apply is sent again after a backoff from the first to the
# most (seconds, with jitter; a failure after a quiet spell of the most starts again).
RECEIPT_RETRY_FIRST = 0.25
RECEIPT_RETRY_MAX = 30.0
MAX_IDS_PER_FRAME = 1000  # as the server accepts
KINDS = ("read", "ack")  # a `read` marks delivered too: it goes first


class Receipts:
    def __init__(self, store: Store, http: HttpApi, socket: ChatSocket, background: Background) -> None:
        self._store = store
        self._http = http
        self._socket = socket
        self._background = background
        # Receipts the server answered with an error: sent again after a backoff and on connect.
        self._failed: dict[str, set[int]] = {kind: set() for kind in KINDS}
        self._failures = 0
        self._last_failure = 0.0
        self._retry: asyncio.Task | None = None

    # -- ours, about envelopes we received ----------------------------------------------------------------

    async def ack(self, copy_id: int) -> None:
        """Sent once the copy's outcome is stored (without a socket the next fetch acknowledges it)."""
        await self._socket.send({"type": "ack", "ids": [copy_id]})

    async def mark_read(self, copy_id: int) -> None:
        """A received message was shown: ``read`` names its copy (section 17.3)."""
        self._store.mark_incoming_read([copy_id])
        if await self._socket.send({"type": "read", "ids": [copy_id]}):
            return
        await self._http.call("POST", "messages/read", {"ids": [copy_id]})

    async def on_error(self, frame: dict) -> bool:
        """The server could not apply an `ack` or `read` (the error names which, and its ids):
        those envelopes were not marked. Without a retry they would come back on the next
        connect (an ack; stored already, so not shown twice) or their sender would never hear
        that they were read. Sent again after `retry_after` or a backoff, and on every connect."""
        if frame.get("frame") not in KINDS or not isinstance(frame.get("ids"), list):
            return False
        ids = [i for i in frame["ids"] if type(i) is int and i > 0]
        self._failed[frame["frame"]].update(ids)
        now = time.monotonic()
        if now - self._last_failure > RECEIPT_RETRY_MAX:
            self._failures = 0
        self._last_failure = now
        self._failures += 1
        retry_after = frame.get("retry_after")
        if isinstance(retry_after, int | float) and retry_after > 0:
            delay = float(retry_after)
        else:
            ceiling = min(RECEIPT_RETRY_MAX, RECEIPT_RETRY_FIRST * 2 ** (self._failures - 1))
            delay = ceiling / 2 + random.random() * ceiling / 2  # noqa: S311 (jitter, not a secret)
        if self._retry is None or self._retry.done():
            self._retry = self._background.spawn(self.send_failed(delay))
        return True

    async def send_failed(self, delay: float = 0.0) -> None:
        """Sends the receipts waiting for a retry; without a socket they wait for the next one
        (its first frame: sent into a refused socket, they would be taken as sent and lost)."""
        await asyncio.sleep(delay)
        for kind in KINDS:
            ids = sorted(self._failed[kind])
            for start in range(0, len(ids), MAX_IDS_PER_FRAME):
                chunk = ids[start : start + MAX_IDS_PER_FRAME]
                if not await self._socket.send({"type": kind, "ids": chunk}):
                    return
                self._failed[kind].difference_update(chunk)

    # -- theirs, about envelopes we sent ------------------------------------------------------------------

    async def on_pushed(self, frame: dict) -> bool:
        """A ``delivered`` or ``read`` push."""
        self._store.mark_outgoing([int(i) for i in frame.get("ids", [])], frame["type"])
        return False  # also an event

    async def on_answer(self, frame: dict) -> bool:
        """The answer to the ``receipts`` question."""
        self._apply(frame)
        return False  # also an event

    async def on_read_elsewhere(self, frame: dict) -> bool:
        """Another device of the account read these received messages (message ids): they are read
        here too, and nothing is sent (docs/PROTOCOL.md section 17.3)."""
        ids = frame.get("ids")
        if isinstance(ids, list):
            self._store.mark_read_elsewhere([i for i in ids if type(i) is int and i > 0])
        return False  # also an event

    def _question(self) -> list[int]:
        """Message ids to ask about: sent ones waiting for a receipt, and received ones not read here
        (another device of the account may have read them meanwhile). At most RECEIPTS_MAX_IDS."""
        sent = self._store.awaiting_receipts(RECEIPTS_MAX_IDS)
        return sent + self._store.unread_incoming(RECEIPTS_MAX_IDS - len(sent))

    async def ask(self) -> None:
        """Receipt pushes are at-most-once: on every connect, ask where unconfirmed messages stand."""
        ids = self._question()
        if ids:
            await self._socket.send({"type": "receipts", "ids": ids})

    async def sync(self) -> dict:
        """REST fallback of the socket's ``receipts`` question: where the sent messages still
        waiting for a read receipt stand (the ``delivered``/``read`` pushes missed while offline)."""
        ids = self._question()
        if not ids:
            return {"delivered": [], "read": [], "unknown": []}
        answer = await self._http.call("GET", "messages/receipts?ids=" + ",".join(str(i) for i in ids))
        self._apply(answer)
        return answer

    def _apply(self, answer: dict) -> None:
        def ids(name: str) -> list[int]:
            return [int(i) for i in answer.get(name, []) if isinstance(i, int)]

        self._store.mark_outgoing(ids("delivered"), "delivered")
        self._store.mark_outgoing(ids("read"), "read")
        self._store.mark_read_elsewhere(ids("read"))  # received ones a device of the account read
        self._store.mark_expired(ids("unknown"))
