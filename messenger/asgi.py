"""ASGI entry point: HTTP through Django, WebSockets through Channels (see chat.routing).

Garbage collection is set up here, once the application is loaded (see `_tune_gc`).
"""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "messenger.settings")

# Django must be set up before anything imports models (the websocket stack does).
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from chat.routing import websocket_application  # noqa: E402
from messenger.checks import refuse_to_start_with_insecure_secrets  # noqa: E402
from messenger.proxy import TrustedProxyMiddleware  # noqa: E402

refuse_to_start_with_insecure_secrets()

# Outermost, so REMOTE_ADDR, the rate limits and the socket scope all see the client the
# trusted reverse proxy named (never one a client wrote into X-Forwarded-For).
application = TrustedProxyMiddleware(ProtocolTypeRouter({"http": django_asgi_app, "websocket": websocket_application}))


def _load_channel_layer() -> None:
    """Create the channel layer now rather than at the first socket: a misconfigured layer
    fails at start-up, and its modules (for Redis: redis-py's client, parsers and commands,
    about 3.5 MB) are loaded once before any client waits on them. Loaded lazily, they were
    counted by the chat benchmark as memory of the first idle sockets."""
    from channels.layers import get_channel_layer

    get_channel_layer()


def _tune_gc() -> None:
    """Keep the cyclic garbage collector off the delivery path.

    Measured on the chat benchmark (1,000 sockets, one process): with Python's default
    thresholds (700, 10, 10) the collector ran about 600 young collections per 10,000
    messages and took 17-20 % of the server's CPU. The young generation's count is objects
    allocated minus objects freed, and a busy socket server keeps a few thousand objects in
    flight (frames, futures, event dicts), so the count kept crossing 700 and every collection
    walked the in-flight set again and promoted it, which triggered the costly older
    collections. With a threshold of 10,000 only a growth of that many live container objects
    (in practice, uncollected cycles) triggers a collection: a handful per run, well under 1 %.
    Cyclic garbage is still collected, just in bigger, rarer batches (bounded by the
    threshold: a few MB at most).

    `gc.freeze()` moves everything loaded at start-up (Django, the URL and model registries:
    about 100,000 objects) into a permanent generation that the full collections no longer
    walk; it is never garbage anyway.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(10_000, older, oldest)


_load_channel_layer()
_tune_gc()
