"""The baseline: a bare Channels echo consumer (stock AsyncWebsocketConsumer, no channel
layer, no auth, no database), served by daphne like the real application. The benchmark runs
the same load against it and reports the chat server's throughput as a ratio of this one."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "messenger.settings")
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402


class EchoConsumer(AsyncWebsocketConsumer):
    channel_layer_alias = "none"  # no channel layer: the barest consumer there is

    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data)


application = ProtocolTypeRouter({"websocket": URLRouter([path("ws/echo/", EchoConsumer.as_asgi())])})
