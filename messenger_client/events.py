"""What the client tells the application besides messages: server frames no feature consumed
(contact requests and answers, receipts, typing...) and what the features announce (identity
changes, too many connections). Owns the bounded queue behind ``Client.events()`` and the
``on_event`` callback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

MAX_QUEUED = 1000


@dataclass(frozen=True)
class Event:
    """Any other server frame: contact requests and answers, receipts, identity changes, typing, a
    contact's (or this account's) ``devices_changed`` (a quiet notice: never a safety-number change)..."""

    type: str
    data: dict = field(default_factory=dict)


class Events:
    def __init__(self, on_event: Callable[[Event], Any] | None = None) -> None:
        self.on_event = on_event
        # Bounded: a bot that never reads events() must not grow without limit (oldest dropped).
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=MAX_QUEUED)

    def emit(self, event: Event) -> None:
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(event)
        if self.on_event is not None:
            self.on_event(event)

    def emit_frame(self, frame: dict) -> None:
        """A server frame as an Event (its ``type``, the rest as data)."""
        self.emit(Event(str(frame.get("type")), {k: v for k, v in frame.items() if k != "type"}))

    async def stream(self) -> AsyncIterator[Event]:
        while True:
            yield await self._queue.get()
