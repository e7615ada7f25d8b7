"""WebSocket routing: `/ws/chat/` behind the Origin and cookie-JWT gates (chat.middleware)."""

from channels.routing import URLRouter
from django.urls import path

from chat.consumers import ChatConsumer
from chat.middleware import websocket_stack

websocket_urlpatterns = [path("ws/chat/", ChatConsumer.as_asgi())]

websocket_application = websocket_stack(URLRouter(websocket_urlpatterns))
