"""WebSocket routes (asgi.py wraps them in origin checking and session authentication)."""

from django.urls import URLPattern, path

from streams.presence.consumers import PresenceConsumer, StreamConsumer

websocket_urlpatterns: list[URLPattern] = [
    path("ws/presence/", PresenceConsumer.as_asgi(), name="ws-presence"),
    path("ws/stream/<str:username>/", StreamConsumer.as_asgi(), name="ws-stream"),
]
