"""WebSocket routes (asgi.py wraps them in origin checking and session authentication)."""

from django.urls import URLPattern, path, re_path

from streams.presence.consumers import PresenceConsumer, StreamConsumer, UnknownPath

websocket_urlpatterns: list[URLPattern] = [
    path("ws/presence/", PresenceConsumer.as_asgi(), name="ws-presence"),
    path("ws/stream/<str:username>/", StreamConsumer.as_asgi(), name="ws-stream"),
    re_path(r"", UnknownPath.as_asgi()),  # last: every other path closes with 4404
]
