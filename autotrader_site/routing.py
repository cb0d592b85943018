"""Websocket URL routes and background-worker channel names (filled by the apps)."""

websocket_urlpatterns: list = []
channel_routes: dict = {}
