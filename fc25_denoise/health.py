"""GET /healthz: can this process reach its database, its channel layer and its presence
store? JSON 200 or 503.

No authentication and nothing secret in the answer, so a load balancer, a monitor or the
operator's `curl` can ask; the failure text names the broken part, never a credential.
Each check is a real round trip that competes with no consumer: the channel layer sends to a
group nobody joins (channels-redis reads and trims the group's members in Redis, and queues
nothing), presence pings Redis on its own connection. (Receiving on a fresh channel would
queue behind the process's receive lock, which an open socket's consumer holds.)
"""

from __future__ import annotations

import asyncio
import logging
import time

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from redis.exceptions import RedisError

from streams.presence.service import Presence

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 3.0
HEALTH_GROUP = "healthz"  # never joined
CHECKS = ("database", "channel_layer", "presence")
# What a broken Redis raises: connection refused/reset, DNS, timeouts, protocol errors.
_REDIS_ERRORS = (OSError, RedisError)


def _query_database() -> None:
    # Runs on a thread of its own (not Django's shared sync thread, which a hung database would
    # block for every view) and closes the connection that thread opened.
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()


async def check_database() -> str | None:
    """None when `SELECT 1` answers, else a short reason."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await sync_to_async(_query_database, thread_sensitive=False)()
    except DatabaseError as exc:
        return f"database error: {type(exc).__name__}"
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g} s"
    return None


async def check_channel_layer() -> str | None:
    """None when the layer's Redis answers a group send, else a short reason."""
    layer = get_channel_layer()
    if layer is None:
        return "no channel layer configured"
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await layer.group_send(HEALTH_GROUP, {"type": "healthz.ping"})
    except _REDIS_ERRORS as exc:
        return f"channel layer error: {type(exc).__name__}"
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g} s"
    return None


async def check_presence(presence: Presence) -> str | None:
    """None when the presence store answers a ping, else a short reason."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await presence.ping()
    except _REDIS_ERRORS as exc:
        return f"presence store error: {type(exc).__name__}"
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g} s"
    return None


@never_cache
@require_safe
async def healthz(request: HttpRequest) -> JsonResponse:
    started = time.monotonic()
    presence = request.scope["services"].presence  # type: ignore[attr-defined]
    results = await asyncio.gather(check_database(), check_channel_layer(), check_presence(presence))
    checks = {name: result or "ok" for name, result in zip(CHECKS, results, strict=True)}
    healthy = not any(results)
    if not healthy:
        log.warning("healthz failing: %s", checks)
    body = {
        "status": "ok" if healthy else "error",
        "checks": checks,
        "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
    }
    return JsonResponse(body, status=200 if healthy else 503)
