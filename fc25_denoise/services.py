"""The per-process objects that hold live state, created with the ASGI application.

Views and consumers reach them through `scope["services"]` (see `ServicesMiddleware`);
tests build their own with `Services.create()` and pass them to `AsyncClient(services=...)`
or `build_application(services)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.live.registry import StreamRegistry
from streams.presence.service import Presence


@dataclass
class Services:
    presence: Presence
    registry: StreamRegistry

    @classmethod
    def create(cls) -> Services:
        presence = Presence()
        return cls(presence=presence, registry=StreamRegistry(events=presence))

    async def start(self) -> None:
        await self.presence.start()
        await self.registry.start()

    async def aclose(self) -> None:
        # Streams first: ending them still publishes through presence.
        await self.registry.aclose()
        await self.presence.aclose()


class ServicesMiddleware:
    """ASGI middleware that puts the process's `Services` into every scope."""

    def __init__(self, app: Any, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, "services": self.services}
        await self.app(scope, receive, send)
