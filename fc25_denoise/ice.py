"""ICE servers for the pages and the server's own peers, with short-lived TURN credentials.

TURN REST API credentials, as coturn checks them with `use-auth-secret` /
`static-auth-secret`: the username is "<expiry unix time>:<user id>" and the password is
base64(HMAC-SHA1(secret, username)). coturn recomputes the password from the shared secret
and refuses the username once its expiry has passed, so no long-lived TURN password ever
leaves the server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, JsonResponse

from fc25_denoise.api import endpoint, reply

# The identity in the TURN username of the server's own peer connections.
SERVER_IDENTITY = "server"


@dataclass(frozen=True)
class TurnCredential:
    username: str
    credential: str
    expires_at: int  # unix time


def turn_password(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def turn_credential(secret: str, identity: str, ttl_s: int, now: float | None = None) -> TurnCredential:
    """A TURN REST API credential for `identity`, valid for `ttl_s` seconds from `now`."""
    expires_at = int(time.time() if now is None else now) + ttl_s
    username = f"{expires_at}:{identity}"
    return TurnCredential(username, turn_password(secret, username), expires_at)


def turn_configured() -> bool:
    return bool(settings.TURN_SECRET and settings.TURN_URLS)


def ice_servers_for(
    user: AbstractBaseUser | AnonymousUser | None, now: float | None = None
) -> list[dict[str, Any]]:
    """settings.ICE_SERVERS plus, when TURN is configured, a TURN entry with fresh credentials.

    `user=None` means the server's own peer connections; an anonymous user gets no TURN
    entry. The result is RTCIceServer dictionaries, usable as-is by a page and, through
    `streams.live.webrtc.ice_servers`, by aiortc.
    """
    servers = [dict(server) for server in settings.ICE_SERVERS]
    if not turn_configured() or (user is not None and not user.is_authenticated):
        return servers
    identity = SERVER_IDENTITY if user is None else str(user.pk)
    cred = turn_credential(settings.TURN_SECRET, identity, settings.TURN_TTL_S, now)
    servers.append(
        {"urls": list(settings.TURN_URLS), "username": cred.username, "credential": cred.credential}
    )
    return servers


@endpoint("GET")
async def ice_servers_view(request: HttpRequest, user: AbstractBaseUser) -> JsonResponse:
    """GET /api/ice-servers/: the signed-in user's RTCIceServer list, fresh TURN credentials included."""
    body = {"iceServers": ice_servers_for(user), "ttl": settings.TURN_TTL_S if turn_configured() else None}
    # Credentials: never cached by the browser or a proxy.
    return reply(body, **{"Cache-Control": "no-store"})
