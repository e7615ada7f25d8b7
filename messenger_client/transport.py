"""Socket half of the transport (REST is http.py): the chat WebSocket's life, the way
static/js/socket.js runs it. Owns the connection task, reconnecting with backoff, the close codes
(docs/ARCHITECTURE.md), sending frames, and routing each server frame through one table that
client.py fills; a frame no handler consumes becomes an Event (events.py).

- The handshake carries the cookies of httpx's jar (``HttpApi.cookie_header``) and this server as
  its Origin.
- A refused socket is accepted and closed at once: only a first frame proves the server took it
  (the ``on_first_frame`` hooks run then, not on open).
- 4401 refreshes the tokens and reconnects; 4403 (signed out) stops for good, and when this
  device was unlinked also erases the keys (``HttpApi.device_removed``); 4429 (too many sockets)
  stops on a first attempt and otherwise retries about once a minute, never in a tight loop.
- Why a 4403: chat/consumers.py gives the reason ``device_removed`` or ``device_required``, but
  daphne, the ASGI server this project runs, sends close frames without their reason. So a 4403
  without one asks the REST API once (``GET auth/me``): a removed device is told 401
  ``device_removed`` there (while its access token lives; after that its next login says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from .errors import ApiError, ClientError, DeviceRemoved, NotSignedIn, TooManyConnections
from .events import Event, Events
from .http import DEVICE_REMOVED, HttpApi, hide_cookies_in
from .tasks import Background

# Close codes of the chat socket (see docs/ARCHITECTURE.md).
CLOSE_UNAUTHENTICATED = 4401
CLOSE_SESSION_REVOKED = 4403
CLOSE_TOO_MANY_SOCKETS = 4429
# The reason of a 4403 for a pending session (a sign-in that is no device of the account).
DEVICE_REQUIRED = "device_required"
# After 4429 an established client waits this long (plus up to as much again) before trying again.
TOO_MANY_SOCKETS_RETRY = 60.0
PATH = "/ws/chat/"

# A frame handler answers True when it consumed the frame (no Event for it).
Handler = Callable[[dict], Awaitable[bool]]
Hook = Callable[[], Awaitable[None]]

hide_cookies_in("websockets.client")  # its debug log prints the handshake's Cookie header


class ChatSocket:
    def __init__(self, http: HttpApi, events: Events, background: Background) -> None:
        self._http = http
        self._events = events
        self._background = background
        self._routes: dict[str, tuple[Handler, ...]] = {}
        self._on_open: tuple[Hook, ...] = ()
        self._on_first_frame: tuple[Hook, ...] = ()
        self._on_close: tuple[Callable[[], None], ...] = ()
        self._task: asyncio.Task | None = None
        self._ws = None
        self._queue_empty = asyncio.Event()
        self._fatal: ClientError | None = None
        self._closing = False

    def wire(
        self,
        routes: dict[str, Handler | tuple[Handler, ...]],
        *,
        on_open: Iterable[Hook] = (),
        on_first_frame: Iterable[Hook] = (),
        on_close: Iterable[Callable[[], None]] = (),
    ) -> None:
        """The dispatch table (handlers of one frame type are asked in order until one consumes it)
        and what runs, in the background, when a socket opens or is first greeted, and when it closes."""
        self._routes = {kind: h if isinstance(h, tuple) else (h,) for kind, h in routes.items()}
        self._on_open = tuple(on_open)
        self._on_first_frame = tuple(on_first_frame)
        self._on_close = tuple(on_close)

    @property
    def url(self) -> str:
        scheme = "wss" if self._http.secure else "ws"
        return f"{scheme}://{urllib.parse.urlsplit(self._http.server).netloc}{PATH}"

    @property
    def connected(self) -> bool:
        return self._ws is not None

    @property
    def task(self) -> asyncio.Task | None:
        """The connection loop; done when the socket stopped for good (see ``raise_why_stopped``)."""
        return self._task

    async def connect(self, *, wait: bool = True, timeout: float = 15.0) -> None:
        """Starts the socket (reconnecting by itself); with ``wait`` until the backlog was delivered."""
        if self._task is None or self._task.done():
            self._fatal = None
            self._queue_empty.clear()
            self._task = asyncio.create_task(self._run())
        if wait:
            waiter = asyncio.create_task(self._queue_empty.wait())
            done, _ = await asyncio.wait({waiter, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if self._fatal is not None:
                raise self._fatal
            if not done:
                raise ClientError(f"could not connect to {self._http.server} within {timeout:.0f} s")

    def raise_why_stopped(self) -> None:
        """Once the loop is done: raises what stopped it (signed out, too many connections, a crash)."""
        if self._fatal is not None:
            raise self._fatal
        if not self._task.cancelled() and self._task.exception() is not None:
            raise self._task.exception()

    async def send(self, frame: dict) -> bool:
        """Sends ``frame`` on the open socket; False when there is none or it closed meanwhile."""
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(json.dumps(frame))
        except ConnectionClosed:
            return False
        return True

    async def dispatch(self, frame: dict) -> None:
        kind = frame.get("type")
        if kind == "queue_empty":
            self._queue_empty.set()
        for handler in self._routes.get(kind, ()):
            if await handler(frame):
                return
        self._events.emit_frame(frame)

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _revoked(self, reason: str | None) -> ClientError:
        """Why the server closed the socket with 4403 (chat/consumers.py), as the error to stop with: the
        close reason when it came, else the answer of one ``GET auth/me`` (see the module docstring)."""
        pending = NotSignedIn("this sign-in is not a device of the account: log in (or start over with --new-device)")
        signed_out = NotSignedIn(
            "signed out by the server (this device signed out, the password changed or the account started over "
            "elsewhere): log in"
        )
        if reason == DEVICE_REMOVED:
            return self._http.device_removed()
        if reason == DEVICE_REQUIRED:
            return pending
        try:
            me = await self._http.call("GET", "auth/me")  # DeviceRemoved has erased the keys already
        except DeviceRemoved as removed:
            return removed
        except ClientError:
            return signed_out
        return pending if isinstance(me, dict) and me.get("device", {}) is None else signed_out

    async def _run(self) -> None:
        delay = 0.5
        established = False
        while not self._closing:
            code = reason = None
            try:
                async with connect(
                    self.url,
                    origin=self._http.server,
                    additional_headers={"Cookie": self._http.cookie_header(PATH)},
                    open_timeout=10,
                    # Envelopes are ciphertext: deflate cannot shrink them and only costs CPU on both ends.
                    compression=None,
                ) as ws:
                    self._ws = ws
                    for hook in self._on_open:
                        self._background.spawn(hook())
                    greeted = False
                    try:
                        async for raw in ws:
                            established = True
                            if not greeted:
                                greeted = True
                                for hook in self._on_first_frame:
                                    self._background.spawn(hook())
                            await self.dispatch(json.loads(raw))
                            delay = 0.5
                    except ConnectionClosed:
                        pass
                    code, reason = ws.close_code, ws.close_reason
            except (OSError, InvalidHandshake, TimeoutError):
                code = None
            finally:
                self._ws = None
                for hook in self._on_close:
                    hook()
            if code == CLOSE_SESSION_REVOKED:
                self._fatal = await self._revoked(reason)
                return
            if code == CLOSE_TOO_MANY_SOCKETS:
                # On the first attempt that is the caller's answer (connect() raises it); a client that
                # was connected before (a network blip while its old socket still counts) keeps trying.
                if not established:
                    self._fatal = TooManyConnections()
                    return
                self._events.emit(Event("too_many_connections", {"retry_in": TOO_MANY_SOCKETS_RETRY}))
                await asyncio.sleep(TOO_MANY_SOCKETS_RETRY * (1 + random.random()))  # noqa: S311 - jitter, not a secret
                continue
            if code == CLOSE_UNAUTHENTICATED:
                try:
                    await self._http.refresh()
                    self._http.save_cookies()
                    continue
                except NotSignedIn as error:
                    self._fatal = error
                    return
                except ApiError:
                    pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
