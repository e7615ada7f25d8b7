"""ASGI entry point: HTTP through Django, WebSockets through Channels (see chat.routing)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "messenger.settings")

# Django must be set up before anything imports models (the websocket stack does).
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from chat.routing import websocket_application  # noqa: E402
from messenger.checks import refuse_to_start_with_insecure_secrets  # noqa: E402

refuse_to_start_with_insecure_secrets()

application = ProtocolTypeRouter({"http": django_asgi_app, "websocket": websocket_application})
