"""A WebSocket consumer base whose message loop does not create a task per message.

Channels' `AsyncConsumer.__call__` waits on its two inputs (the client's frames from the
server, the pushes from the channel layer) with `await_many_dispatch`: for every message it
runs `asyncio.wait` over both (a waiter future, a done-callback on each input) and starts a
new `asyncio.Task` for the next read of the input that delivered. On the chat benchmark that
machinery was about a tenth of the event loop's CPU, for a socket that receives two frames
(send, ack) and has three pushed (message, delivered, and its own `sent` reply) per message.

Here each input has one long-lived reader task ("pump") that moves its messages into a
one-slot inbox, and the consumer's own task takes them out one at a time. What stays the same:
- messages are dispatched one at a time, in arrival order per input (a handler awaiting the
  database holds back the next frame and the next push, as before);
- little is read ahead of the message being handled: one message per input held by its
  reader plus one in the inbox (channels' loop held one per input), so the channel layer's
  per-channel capacity and the server's own queue still apply;
- an exception from an input ends the consumer with that exception, and `StopConsumer` from a
  handler ends it cleanly; on exit the pumps are cancelled and awaited.
"""

import asyncio
import functools

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer


class _Failed:
    """An input's exception, carried through the inbox to the consumer's task."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException):
        self.error = error


class _Inbox:
    """A one-slot queue with one reader. `asyncio.Queue(maxsize=1)` does the same with four
    deques and an Event, about 2.5 KB per idle socket; this holds a slot and two futures.

    `put` waits while the slot is full; `get` waits while it is empty, then empties it and
    lets the next waiting writer in. A writer cancelled after being let in passes its turn on,
    so no writer waits for a slot that is free."""

    __slots__ = ("_full", "_getter", "_item", "_putters")

    def __init__(self):
        self._item = None
        self._full = False
        self._getter: asyncio.Future | None = None
        self._putters: list[asyncio.Future] = []

    def _wake_putter(self) -> None:
        while self._putters:
            putter = self._putters.pop(0)
            if not putter.done():
                putter.set_result(None)
                return

    async def put(self, item) -> None:
        while self._full:
            putter = asyncio.get_running_loop().create_future()
            self._putters.append(putter)
            try:
                await putter
            except BaseException:
                if putter in self._putters:
                    self._putters.remove(putter)
                elif not self._full:
                    self._wake_putter()
                raise
        self._item, self._full = item, True
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)

    async def get(self):
        while not self._full:
            self._getter = asyncio.get_running_loop().create_future()
            try:
                await self._getter
            finally:
                self._getter = None
        item, self._item, self._full = self._item, None, False
        self._wake_putter()
        return item


async def _pump(source, inbox: _Inbox) -> None:
    while True:
        try:
            message = await source()
        except Exception as error:
            await inbox.put(_Failed(error))
            return
        await inbox.put(message)


async def dispatch_in_order(sources, dispatch) -> None:
    """Read every input in `sources` (callables returning an awaitable message) and await
    `dispatch(message)` for each message, one at a time, until a handler or an input raises."""
    inbox = _Inbox()
    pumps = [asyncio.ensure_future(_pump(source, inbox)) for source in sources]
    try:
        while True:
            message = await inbox.get()
            if type(message) is _Failed:
                raise message.error
            await dispatch(message)
    finally:
        for pump in pumps:
            pump.cancel()
        for pump in pumps:
            try:
                await pump
            except asyncio.CancelledError:
                pass


class SingleInboxWebsocketConsumer(AsyncWebsocketConsumer):
    """`AsyncWebsocketConsumer` with `dispatch_in_order` as its message loop (async only)."""

    async def __call__(self, scope, receive, send):
        # AsyncConsumer.__call__ with the loop replaced; the rest is as channels does it.
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        sources = [receive]
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            self.channel_receive = functools.partial(self.channel_layer.receive, self.channel_name)
            sources.append(self.channel_receive)
        self.base_send = send
        try:
            await dispatch_in_order(sources, self.dispatch)
        except StopConsumer:
            pass
