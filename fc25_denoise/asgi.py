"""ASGI entry point: HTTP through Django, WebSockets through Channels consumers.

Daphne 4.2 implements no ASGI lifespan, so start-up (recovering recordings, presence
heartbeat) and clean shutdown (closing peers, finishing files) hang on Twisted's reactor
events when Daphne runs us; tests call `Services.start()` / `aclose()` themselves.
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
    """Run start-up and shutdown work on the reactor Daphne is about to run."""
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    def startup() -> Deferred:
        return Deferred.fromFuture(asyncio.ensure_future(services.start()))

    def shutdown() -> Deferred:
        return Deferred.fromFuture(asyncio.ensure_future(services.aclose()))

    reactor.callWhenRunning(startup)
    reactor.addSystemEventTrigger("before", "shutdown", shutdown)


if not settings.REDIS_URL:
    log.info("REDIS_URL is not set: using the in-memory channel layer (presence works in this process only).")

services = Services.create()
application = build_application(services)
if "daphne" in sys.modules and "twisted.internet.reactor" in sys.modules:
    _hook_into_daphne(services)
