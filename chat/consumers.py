"""The chat WebSocket (`/ws/chat/`): the socket side of chat.services.

Lifecycle: the handshake passes chat.middleware (Origin, access-token cookie); an anonymous
socket is accepted only to be closed with 4401 (a browser cannot read the status of a refused
handshake, but it can read a close code). Then the socket joins its user's group, receives
every undelivered envelope in id order, and `queue_empty`. It is closed with 4401 when the
access token it was opened with expires (tokens cannot be revoked, so a socket must not outlive
one; the client refreshes and reconnects) and with 4403 on `session.revoked` (deactivation,
password change, start over: sign in again) and on `device.revoked` for its device (that
device signed out, or was unlinked). A pending session (no device yet) is closed with 4403
at once. A user's sockets are capped
across processes (realtime.sockets): one over CHAT_MAX_SOCKETS_PER_USER is accepted only to be
closed with 4429.

Client frames are in FRAME_HANDLERS; server frames are built by each app's events module
(chat.events for chat's) and published through realtime.bus. An invalid frame gets an `error`
frame and the socket stays open.
Database work never runs on the event loop: it runs in the chat database thread (realtime.db),
and the `send`, `ack` and `read` frames of every socket of the process are applied in batches
(realtime.batching runs chat.services.envelopes_apply: one thread hop and one transaction per
batch). Events the services publish in a batch are sent from the event loop after its commit.

Redelivery: pushes are at-most-once. The consumer remembers which envelope ids it sent and
the client has not acknowledged yet, so the backlog and a push racing it are not shown twice;
anything not acknowledged is sent again on the next connect (a `sync` frame sends what this
socket has not sent), and when the channel layer reports that it lost its subscriptions for a while
(`layer.resubscribed`, realtime.layers) or a process gave up publishing to this user
(`backlog.reread`, realtime.batching) the socket re-reads its backlog by itself. An `ack` or
`read` that fails is answered with an error naming its ids, so the client sends it again, and
the socket forgets it sent them (a `sync` sends them again).
Receipts go the other way: the sender's client asks where its unconfirmed envelopes stand
(`receipts` frame) on every connect, so a `delivered`/`read` push it missed is not lost either.

Flow control: the unacknowledged envelopes are also the socket's window. At most
CHAT_UNACKED_WINDOW_BYTES of bodies are in flight; what does not fit (backlog or push) stays
in the database and is read and sent, in id order, as acknowledgements free room, then
`queue_empty`. A client that stops reading costs the server one window, not its backlog.
Envelopes acknowledged on another socket of the user (another tab) leave the window too: a
full window asks the database which of its envelopes are still undelivered (when a push does
not fit or on `sync`, at most once per PRUNE_SECONDS), so a tab that lets another one
acknowledge does not stall.
"""

import asyncio
import contextlib
import json
import logging
import math
import time

from channels.consumer import get_handler_name
from django.conf import settings

from accounts.devices import device_active
from accounts.sessions import PENDING_DEVICE, session_generation
from chat import events, group_messages, selectors, services, validation
from chat.errors import InvalidFrame
from messenger.errors import DomainError, RateLimited
from messenger.validation import is_clean_text, json_check, nesting_too_deep
from realtime import bus
from realtime.batching import batcher
from realtime.db import run_in_db_thread
from realtime.dispatch import SingleInboxWebsocketConsumer
from realtime.ratelimit import local_rate_limit_hit
from realtime.sockets import socket_place_release, socket_place_take

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401  # no, invalid or expired access token: refresh, then reconnect
CLOSE_SESSION_REVOKED = 4403  # logged out, deactivated, device unlinked or none yet: sign in again
CLOSE_TOO_MANY_SOCKETS = 4429  # CHAT_MAX_SOCKETS_PER_USER already open: close one, retry later

# A full window asks the database what was acknowledged elsewhere at most this often.
PRUNE_SECONDS = 1.0

# Room for the JSON around the largest body; anything bigger is refused unparsed.
FRAME_OVERHEAD = 4096

# Waits before the second and third try of a backlog re-read the channel layer asked for (the
# first try runs at once; a database error closes the connection, so a retry gets a new one).
RESYNC_RETRY_DELAYS = (0.2, 1.0)

RECEIPT_FRAMES = ("ack", "read")
# The failures of a well-formed ack/read that the same frame, sent again, can get past: only
# these name the ids. A frame refused for its shape (a bad string, invalid ids) is not one to
# send again as it was.
RETRYABLE_CODES = ("server_error", "rate_limited")


# Acknowledged envelopes that a backlog re-read had sent, remembered per socket (see
# ChatConsumer._reread_delivered): a push queued behind the re-read is not sent twice.
REREAD_ACKED_KEPT = 256
# The pushes that are queue entries (acknowledged by id, counted in the window).
MESSAGE_TYPES = ("message", "group_message")


def max_frame_size() -> int:
    """A `send` carries one body per device of the recipient and per other device of the
    sender (docs/PROTOCOL.md section 17.1): at most 2 x DEVICES_PER_ACCOUNT_MAX - 1 bodies; a
    `group_send` one body and a sender key entry per member device (GROUP_SEND_MAX_BYTES)."""
    send = settings.MESSAGE_MAX_BODY_BYTES * (2 * settings.DEVICES_PER_ACCOUNT_MAX - 1)
    return max(send, settings.GROUP_SEND_MAX_BYTES) + FRAME_OVERHEAD


def _encode(event: dict) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


class ChatConsumer(SingleInboxWebsocketConsumer):
    user = None
    device_id = 1  # the device of the token the socket was opened with
    group: str | None = None
    closing = False
    placed = False  # holds one of the user's CHAT_MAX_SOCKETS_PER_USER places
    _expiry_handle: asyncio.TimerHandle | None = None
    _expiry_task: asyncio.Task | None = None
    # Flow control: id -> body bytes of the envelopes sent and not acknowledged yet, their
    # total, and whether undelivered envelopes wait in the database above `_cursor`.
    _unacked: dict[int, int] | None = None
    # Envelopes a re-read of the backlog sent (their pushes may still be queued behind it) and,
    # once acknowledged, the last few of them: a queued push of one of those is not sent again.
    _reread_sent: set[int] | None = None
    _reread_acked: dict[int, None] | None = None
    _in_flight = 0
    _cursor = 0
    _behind = False
    _pruned_at = -PRUNE_SECONDS

    async def dispatch(self, message):
        # AsyncConsumer.dispatch runs close_old_connections() in a worker thread before every
        # message: a thread hop per frame and per push. This consumer's ORM calls all run in
        # the chat database thread (realtime.db), which manages its own connection.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --- lifecycle -------------------------------------------------------------------------

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if self.scope["token_device"] == PENDING_DEVICE:
            await self.accept()
            await self.close(code=CLOSE_SESSION_REVOKED, reason="device_required")
            return
        if not await socket_place_take(user_id=user.pk, member=self.channel_name):
            await self.accept()
            await self.close(code=CLOSE_TOO_MANY_SOCKETS, reason="Too many open connections for this account.")
            return
        self.placed = True
        self.user = user
        self.device_id = self.scope["token_device"]
        await self.accept()
        self.group = bus.user_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        if not await self._session_still_current():
            return
        delay = max(0.0, self.scope["token_exp"] - time.time())
        self._expiry_handle = asyncio.get_running_loop().call_later(delay, self._token_expired)
        await self._deliver_backlog()

    def _token_expired(self) -> None:
        self._expiry_task = asyncio.ensure_future(self._close(CLOSE_UNAUTHENTICATED))

    async def _close(self, code: int, reason: str | None = None) -> None:
        if not self.closing:
            self.closing = True
            await self.close(code=code, reason=reason)

    async def disconnect(self, code):
        if self._expiry_handle is not None:
            self._expiry_handle.cancel()
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        await self._release_place()

    async def __call__(self, scope, receive, send):
        # The socket's place (realtime.sockets) is given back however the consumer ends: after
        # `disconnect`, and also when a handler raised and `disconnect` never ran.
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._release_place()

    async def _release_place(self) -> None:
        if self.placed:
            self.placed = False
            await socket_place_release(user_id=self.user.pk, member=self.channel_name)

    def _session_current(self) -> bool:
        device = device_active(user_id=self.user.pk, device_id=self.scope["token_device"])
        return (
            session_generation(user_id=self.user.pk) == self.scope["token_generation"]
            and device is not None
            and device.generation == self.scope["token_device_generation"]
        )

    async def _session_still_current(self) -> bool:
        """The handshake checked the token's session and device generations before this socket
        joined its group; sessions ended in between published `session.revoked` or
        `device.revoked` to a group it was not in yet. Checked once more now that it is in:
        two queries per connect, none per frame."""
        if not await run_in_db_thread(self._session_current):
            await self._close(CLOSE_SESSION_REVOKED)
            return False
        return True

    async def session_revoked(self, message):
        # Sockets opened with a token of the new generation (the new device's) stay open.
        if self.scope["token_generation"] < message.get("generation", math.inf):
            await self._close(CLOSE_SESSION_REVOKED)

    async def device_revoked(self, message):
        """This socket's device was unlinked (every socket of it closes) or signed out (those
        opened before its new generation close)."""
        if message.get("device_id") != self.scope["token_device"]:
            return
        if message.get("removed"):
            await self._close(CLOSE_SESSION_REVOKED, reason="device_removed")
        elif self.scope["token_device_generation"] < message.get("generation", math.inf):
            await self._close(CLOSE_SESSION_REVOKED)

    # --- server -> client --------------------------------------------------------------------

    async def _send_event(self, event: dict) -> None:
        if not self.closing:
            await self.send(text_data=_encode(event))

    async def _send_message(self, event: dict, size: int) -> None:
        if self._unacked is None:
            self._unacked = {}
        self._unacked[event["id"]] = size
        self._in_flight += size
        await self._send_event(event)

    def _acknowledged(self, ids: list[int]) -> None:
        if self._unacked:
            for pk in ids:
                self._in_flight -= self._unacked.pop(pk, 0)
        if self._reread_sent:
            self._reread_sent.difference_update(ids)  # it holds only envelopes still in flight

    def _reread_delivered(self, ids: list[int]) -> None:
        """Of `ids` (acknowledged now), those a re-read sent are remembered (the last
        REREAD_ACKED_KEPT): their pushes, queued before the re-read, would show them twice."""
        if not self._reread_sent:
            return
        for pk in ids:
            if pk in self._reread_sent:
                self._reread_sent.discard(pk)
                if self._reread_acked is None:
                    self._reread_acked = {}
                self._reread_acked[pk] = None
        while self._reread_acked and len(self._reread_acked) > REREAD_ACKED_KEPT:
            del self._reread_acked[next(iter(self._reread_acked))]

    async def _deliver_backlog(self) -> None:
        """Every undelivered envelope, oldest first, as far as the window allows; the rest
        follows as acknowledgements free room (`_refill`). The group was joined first, so an
        envelope committed meanwhile is either read here or pushed afterwards (or both:
        `_unacked` keeps it from being shown twice)."""
        self._cursor = 0
        self._behind = True
        await self._prune_delivered()
        await self._refill()

    async def _prune_delivered(self) -> bool:
        """Take the envelopes that were acknowledged on another socket of the user (or
        deleted by retention) out of this socket's window; True when that freed room. At
        most once per PRUNE_SECONDS: for a socket that really does not read it finds
        nothing, and must not cost a query per push."""
        now = time.monotonic()
        if not self._unacked or now - self._pruned_at < PRUNE_SECONDS:
            return False
        self._pruned_at = now
        still = await run_in_db_thread(
            selectors.envelopes_undelivered_among,
            user_id=self.user.pk,
            device_id=self.device_id,
            ids=list(self._unacked),
        )
        gone = [pk for pk in self._unacked if pk not in still]
        self._acknowledged(gone)
        return bool(gone)

    async def _refill(self) -> None:
        """Send undelivered envelopes above `_cursor` from the database while the window has
        room; `queue_empty` once none is left. The window counts the body bytes this socket
        has sent and the client not yet acknowledged (CHAT_UNACKED_WINDOW_BYTES): a client that
        does not read holds at most that much of the server's memory, and never less than
        one envelope is allowed in flight (a window smaller than a body cannot stall)."""
        window = settings.CHAT_UNACKED_WINDOW_BYTES
        while self._behind and not self.closing:
            room = window - self._in_flight
            if room <= 0 and self._in_flight:
                return
            page = await run_in_db_thread(
                selectors.envelopes_pending_within,
                user_id=self.user.pk,
                device_id=self.device_id,
                after=self._cursor,
                room=room,
                skip=frozenset(self._unacked or ()),
                at_least_one=not self._in_flight,
            )
            for event in page.events:
                if not self._unacked or event["id"] not in self._unacked:
                    if self._reread_sent is None:
                        self._reread_sent = set()
                    self._reread_sent.add(event["id"])
                    await self._send_message(event, page.size[event["id"]])
            self._cursor = max(self._cursor, page.cursor)
            if page.drained:
                self._behind = False
                await self._send_event(events.queue_empty_event())
            elif not page.events and self._in_flight:
                return  # the next envelope does not fit: wait for acknowledgements

    async def layer_resubscribed(self, message):
        """The channel layer's subscriptions were cut and are back (realtime.redis_layer): the
        pushes published in between are lost, so the backlog is read again. The layer sends
        this only once the subscription is confirmed, so an envelope committed before then
        is in that read, and one committed after is pushed."""
        await self._reread_backlog()

    async def backlog_reread(self, message):
        """A process gave up publishing pushes to this user (realtime.batching.Pushes): the
        envelopes are in the database, so the backlog is read again."""
        await self._reread_backlog()

    async def _reread_backlog(self) -> None:
        """The backlog without what this socket sent already. A failed read (the database
        connection went too) is tried again, holding this socket's frames for a moment,
        rather than leaving envelopes waiting for the next connect; if the last try fails
        too, the socket ends with the error and the client's reconnect delivers them."""
        if self.user is None or self.closing:
            return
        for delay in (*RESYNC_RETRY_DELAYS, None):
            try:
                await self._deliver_backlog()
                return
            except Exception as exc:
                logger.warning("chat backlog re-read failed user=%s error=%s", self.user.pk, type(exc).__name__)
                if delay is None:
                    raise
                await asyncio.sleep(delay)

    async def push_event(self, message):
        """A group message from realtime.bus.publish_on_commit: forward the event as it is. A
        `message` that does not fit in the window, or that would overtake envelopes still
        waiting in the database, is not sent: it stays in the database (the row is the
        message) and `_refill` sends it, in id order, when acknowledgements free room."""
        event = message["event"]
        if events.DEVICE_KEY in event or events.EXCEPT_DEVICE_KEY in event:
            if event.get(events.DEVICE_KEY, self.device_id) != self.device_id:
                return
            if event.get(events.EXCEPT_DEVICE_KEY) == self.device_id:
                return
            event = {k: v for k, v in event.items() if k not in (events.DEVICE_KEY, events.EXCEPT_DEVICE_KEY)}
        if event.get("type") in MESSAGE_TYPES:
            pk = event["id"]
            if (self._unacked and pk in self._unacked) or (self._reread_acked and pk in self._reread_acked):
                return
            size = events.message_size(event)
            if self._behind or (self._in_flight and self._in_flight + size > settings.CHAT_UNACKED_WINDOW_BYTES):
                self._behind = True
                # Commits can land out of id order (several processes): re-read from here.
                self._cursor = min(self._cursor, pk - 1)
                if await self._prune_delivered():
                    await self._refill()
                return
            await self._send_message(event, size)
        else:
            await self._send_event(event)

    # --- client -> server --------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if self.closing or self.user is None:
            return
        frame = None
        try:
            if text_data is None:
                raise InvalidFrame("Frames are JSON text.")
            if len(text_data) > max_frame_size():
                raise InvalidFrame("The frame is too large.", code="frame_too_large")
            try:
                frame = json.loads(text_data)
            except ValueError:
                raise InvalidFrame("Frames are JSON objects.") from None
            except RecursionError:
                raise nesting_too_deep() from None
            if not isinstance(frame, dict):
                raise InvalidFrame("Frames are JSON objects.")
            # No string with a NUL or a lone surrogate goes further (the REST parser's check).
            json_check(frame, text_data)
            frame_type = frame.get("type")
            handler = self.FRAME_HANDLERS.get(frame_type) if isinstance(frame_type, str) else None
            if handler is None:
                raise InvalidFrame("Unknown frame type.", code="unknown_type")
            await handler(self, frame)
        except DomainError as exc:
            await self._send_error(exc, frame)
        except Exception as exc:
            # The exception's text is not logged: database errors can quote the values.
            logger.error(
                "chat frame failed user=%s type=%s error=%s",
                self.user.pk,
                frame.get("type") if isinstance(frame, dict) else None,
                type(exc).__name__,
            )
            logger.debug("chat frame failure", exc_info=True)
            await self._send_error(DomainError("The server could not handle this frame.", code="server_error"), frame)

    async def _send_error(self, exc: DomainError, frame) -> None:
        client_id = frame.get("client_id") if isinstance(frame, dict) else None
        if not isinstance(client_id, str) or len(client_id) > 64 or not is_clean_text(client_id):
            client_id = None
        retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
        ids = _receipt_ids(frame) if exc.code in RETRYABLE_CODES else None
        await self._send_event(
            events.error_event(
                code=exc.code,
                detail=exc.detail,
                client_id=client_id,
                frame=frame["type"] if ids else None,
                ids=ids,
                retry_after=retry_after,
                fields=exc.fields(),
            )
        )

    async def _frame_send(self, frame: dict) -> None:
        request = services.send_request_parse(frame, sender=self.user, sender_device=self.device_id)
        local_rate_limit_hit("message_send", self.user.pk)
        result = await batcher(services.envelopes_apply).submit(request)
        await self._send_event(events.sent_event(client_id=request.client_id, id=result.id))

    async def _frame_ack(self, frame: dict) -> None:
        ids = validation.ids_parse(frame.get("ids"))
        await self._receipt("ack", services.ReceiptRequest(self.user.pk, ids, device_id=self.device_id))

    async def _frame_read(self, frame: dict) -> None:
        ids = validation.ids_parse(frame.get("ids"))
        await self._receipt("read", services.ReceiptRequest(self.user.pk, ids, read=True, device_id=self.device_id))

    async def _receipt(self, scope: str, request: services.ReceiptRequest) -> None:
        """Apply an `ack`/`read`; its envelopes leave the socket's window either way.

        When it fails (rate limited, or the database failed), nothing was marked: the error
        frame names the ids and the client sends the frame again. Until then the socket
        forgets it sent those envelopes, so they are undelivered envelopes like any other: a
        `sync` (or a re-read after a lost push) sends them again, and they do not hold the
        window. Had they stayed in `_unacked`, a `sync` would skip them and they would wait
        for the next connect (and come back there as duplicates of what the client showed)."""
        try:
            local_rate_limit_hit(scope, self.user.pk)
            await batcher(services.envelopes_apply).submit(request)
            self._reread_delivered(request.ids)
        finally:
            self._acknowledged(request.ids)
        if self._behind:
            await self._refill()

    async def _frame_typing(self, frame: dict) -> None:
        """Relayed, never stored, only to open sockets: of the contact (`to`), or of the other
        members of a group (`group`, docs/PROTOCOL.md section 23)."""
        state = validation.typing_state_parse(frame.get("state"))
        if "group" in frame:
            group = validation.group_id_parse(frame.get("group"))
            local_rate_limit_hit("typing", self.user.pk)
            recipients = await run_in_db_thread(group_messages.typing_recipients, sender=self.user, group=group)
            event = events.typing_event(sender_email=self.user.email, state=state, group=str(group))
        else:
            to_email = validation.email_parse(frame.get("to"))
            local_rate_limit_hit("typing", self.user.pk)
            recipients = [await run_in_db_thread(services.typing_recipient, sender=self.user, to_email=to_email)]
            event = events.typing_event(sender_email=self.user.email, state=state)
        # A group's members in one round trip to Redis (realtime.redis_layer group_send_many), not one each.
        await bus.send_collected(self.channel_layer, [(recipients, {"type": bus.PUSH_EVENT, "event": event})])

    async def _frame_receipts(self, frame: dict) -> None:
        """Where the user's own sent envelopes stand (the receipts a push may have lost)."""
        ids = validation.ids_parse(frame.get("ids"))
        local_rate_limit_hit("receipts", self.user.pk)
        await self._send_event(await run_in_db_thread(selectors.envelope_receipts, user_id=self.user.pk, ids=ids))

    async def _frame_group_send(self, frame: dict) -> None:
        request = group_messages.group_send_parse(frame, sender=self.user, sender_device=self.device_id)
        local_rate_limit_hit("group_send", self.user.pk)
        result = await batcher(services.envelopes_apply).submit(request)
        await self._send_event(events.sent_event(client_id=request.client_id, id=result.id))

    async def _frame_group_receipts(self, frame: dict) -> None:
        """Where the user's own group messages stand (docs/PROTOCOL.md section 23)."""
        ids = validation.ids_parse(frame.get("ids"))
        local_rate_limit_hit("receipts", self.user.pk)
        answer = await run_in_db_thread(group_messages.group_receipts_of, user_id=self.user.pk, ids=ids)
        await self._send_event(answer)

    async def _frame_sync(self, frame: dict) -> None:
        """Send the backlog again (after the client suspects a dropped push): the undelivered
        envelopes this socket has not sent, or forgot it sent because their `ack`/`read`
        failed; the envelopes in flight are the client's to acknowledge. Rate limited: each
        one reads the user's queue in the chat database thread, which every socket of the
        process shares."""
        local_rate_limit_hit("sync", self.user.pk)
        await self._deliver_backlog()

    FRAME_HANDLERS = {
        "send": _frame_send,
        "ack": _frame_ack,
        "read": _frame_read,
        "typing": _frame_typing,
        "sync": _frame_sync,
        "receipts": _frame_receipts,
        "group_send": _frame_group_send,
        "group_receipts": _frame_group_receipts,
    }


def _receipt_ids(frame) -> list[int] | None:
    """The ids of an `ack`/`read` frame, for its error frame: the client learns which
    envelopes were not marked and sends that frame again. None for any other frame, and
    for ids that are themselves invalid (sending those again cannot succeed)."""
    if not isinstance(frame, dict) or frame.get("type") not in RECEIPT_FRAMES:
        return None
    with contextlib.suppress(DomainError):
        return validation.ids_parse(frame.get("ids"))
    return None
