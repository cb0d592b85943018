"""Websocket URL routes and background-worker channel names (filled by the apps)."""

from django.urls import path

from analytics.live import LiveConsumer
from marketdata.streamer.consumer import STREAMER_CHANNEL, StreamerConsumer

websocket_urlpatterns: list = [
    path("ws/live/", LiveConsumer.as_asgi(), name="ws-live"),
]
channel_routes: dict = {
    # background worker: `manage.py run_streamer` (or runworker + a streamer.start message)
    STREAMER_CHANNEL: StreamerConsumer.as_asgi(),
}
