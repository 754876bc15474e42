"""ASGI entry point: HTTP through Django, WebSockets through Channels consumers.

Daphne 4.2 implements no ASGI lifespan, so start-up (recovering recordings, presence
heartbeat) hangs on Twisted's reactor events when Daphne runs us, and SIGTERM/SIGINT start
our graceful shutdown (`fc25_denoise.shutdown`); tests call `Services.start()` / `aclose()`
themselves.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fc25_denoise.settings")
django_http = get_asgi_application()  # sets up Django before the imports below touch models

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from fc25_denoise.origins import OriginValidator  # noqa: E402
from fc25_denoise.services import Services, ServicesMiddleware  # noqa: E402
from fc25_denoise.shutdown import GracefulShutdown  # noqa: E402
from streams.routing import websocket_urlpatterns  # noqa: E402

log = logging.getLogger("fc25_denoise")


def build_application(services: Services) -> Any:
    router = ProtocolTypeRouter(
        {
            "http": django_http,
            "websocket": OriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        }
    )
    return ServicesMiddleware(router, services)


def _hook_into_daphne(services: Services) -> None:
    """Run start-up work on the reactor Daphne is about to run, and take over its shutdown
    signals for a graceful one (`fc25_denoise.shutdown`)."""
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    def startup() -> Deferred:
        loop = asyncio.get_event_loop()
        GracefulShutdown(services, reactor, loop).install()  # after Twisted installed its own
        return Deferred.fromFuture(asyncio.ensure_future(services.start()))

    def shutdown() -> Deferred:  # the reactor stopping for another reason: close all the same
        return Deferred.fromFuture(asyncio.ensure_future(services.aclose()))

    reactor.callWhenRunning(startup)
    reactor.addSystemEventTrigger("before", "shutdown", shutdown)


if not settings.REDIS_URL:
    log.info("REDIS_URL is not set: using the in-memory channel layer (presence works in this process only).")

services = Services.create()
application = build_application(services)
if "daphne" in sys.modules and "twisted.internet.reactor" in sys.modules:
    _hook_into_daphne(services)
