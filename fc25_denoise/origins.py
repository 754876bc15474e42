"""Which origins may open a WebSocket: the site's own, compared in full (scheme, host and port),
and those in CSRF_TRUSTED_ORIGINS (`https://*.example.org` covers the subdomains).

Browsers send `Origin` on every WebSocket handshake, and a page on another site (or another
port of this host, or plain http when the site is https) must not reach a user's sockets with
the user's cookies. The site's scheme: what the ASGI server says; else `X-Forwarded-Proto` when
the app runs behind the proxy (BEHIND_PROXY, set by the nginx unit); else https in production.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import validate_host

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int]


def parse_origin(text: str) -> Origin | None:
    """(scheme, host, port) of an http(s) origin, or None for anything else."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path or parts.query:
        return None
    return parts.scheme, parts.hostname.lower(), port or DEFAULT_PORTS[parts.scheme]


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def site_scheme(scope: dict[str, Any]) -> str:
    scheme = scope.get("scheme")
    if scheme in ("wss", "https"):
        return "https"
    if settings.BEHIND_PROXY:
        forwarded = _header(scope, b"x-forwarded-proto").split(",")[0].strip().lower()
        if forwarded in DEFAULT_PORTS:
            return forwarded
    if scheme in ("ws", "http"):
        return "http"
    # Daphne puts no scheme in a WebSocket scope: production is https-only, development plain http.
    return "https" if settings.SESSION_COOKIE_SECURE else "http"


def _trusted(origin: Origin, pattern: str) -> bool:
    scheme, _, host = pattern.partition("://")
    if host.startswith("*."):
        wanted = parse_origin(f"{scheme}://{host[2:]}")
        return (
            wanted is not None
            and (origin[0], origin[2]) == (wanted[0], wanted[2])
            and origin[1].endswith(f".{wanted[1]}")
        )
    return origin == parse_origin(pattern)


def origin_allowed(scope: dict[str, Any]) -> bool:
    origin = parse_origin(_header(scope, b"origin"))
    if origin is None:
        return False
    if any(_trusted(origin, pattern) for pattern in settings.CSRF_TRUSTED_ORIGINS):
        return True
    own = parse_origin(f"{site_scheme(scope)}://{_header(scope, b'host')}")
    if own is None:
        return False
    allowed_hosts = settings.ALLOWED_HOSTS or (["localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
    host = f"[{own[1]}]" if ":" in own[1] else own[1]  # ALLOWED_HOSTS writes IPv6 in brackets
    return origin == own and validate_host(host, allowed_hosts)


class OriginValidator:
    """ASGI middleware: a WebSocket handshake from any other origin is refused (HTTP 403)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            log.info(
                "WebSocket to %s refused: origin %r",
                scope.get("path", "")[:100],
                _header(scope, b"origin")[:100],
            )
            return await WebsocketDenier()(scope, receive, send)
        return await self.app(scope, receive, send)
