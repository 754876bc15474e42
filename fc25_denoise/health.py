"""GET /healthz: can this process reach its database and its channel layer? JSON 200 or 503.

No authentication and nothing secret in the answer, so a load balancer, a monitor or the
operator's `curl` can ask; the failure text names the broken part, never a credential.
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

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 3.0
# What a broken Redis layer raises: connection refused/reset, DNS, timeouts, protocol errors.
_LAYER_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError)
try:
    from redis.exceptions import RedisError

    _LAYER_ERRORS = (*_LAYER_ERRORS, RedisError)
except ImportError:  # redis is optional without REDIS_URL
    pass


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
    """None when a message sent to a fresh channel comes back, else a short reason."""
    layer = get_channel_layer()
    if layer is None:
        return "no channel layer configured"
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            # The default prefix, as every consumer's: channels-redis pops one key per prefix
            # and process, and a waiting consumer would starve a channel of another prefix.
            channel = await layer.new_channel()
            await layer.send(channel, {"type": "healthz.ping"})
            message = await layer.receive(channel)
    except _LAYER_ERRORS as exc:
        return f"channel layer error: {type(exc).__name__}"
    if message.get("type") != "healthz.ping":
        return "channel layer returned another message"
    return None


@never_cache
@require_safe
async def healthz(request: HttpRequest) -> JsonResponse:
    started = time.monotonic()
    database, layer = await asyncio.gather(check_database(), check_channel_layer())
    checks = {"database": database or "ok", "channel_layer": layer or "ok"}
    healthy = database is None and layer is None
    if not healthy:
        log.warning("healthz failing: %s", checks)
    body = {
        "status": "ok" if healthy else "error",
        "checks": checks,
        "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
    }
    return JsonResponse(body, status=200 if healthy else 503)
