"""WebSocket routes (filled by the presence and live-path consumers)."""

from django.urls import URLPattern

websocket_urlpatterns: list[URLPattern] = []
