"""Websocket URL routes and background-worker channel names (filled by the apps)."""

from django.urls import path

from analytics.live import LiveConsumer

websocket_urlpatterns: list = [
    path("ws/live/", LiveConsumer.as_asgi(), name="ws-live"),
]
channel_routes: dict = {}
