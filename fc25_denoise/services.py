"""The per-process objects that hold live state, created with the ASGI application.

Views and consumers reach them through `scope["services"]` (see `ServicesMiddleware`);
tests build their own with `Services.create()` and pass them to `AsyncClient(services=...)`
or `build_application(services)`. The views call the `router` (streams.cluster.router), which
runs each call here or on the process that owns the stream.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from streams.cluster.node import ClusterNode
from streams.cluster.router import StreamRouter
from streams.live.registry import StreamRegistry
from streams.presence.service import Presence


@dataclass
class Services:
    presence: Presence
    registry: StreamRegistry
    node: ClusterNode | None = None  # none: this process serves only itself (tests of one part)
    router: StreamRouter = field(init=False)
    _closing: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.router = StreamRouter(self.registry, self.node)

    @classmethod
    def create(cls) -> Services:
        presence = Presence()
        node = ClusterNode.for_process(presence)
        presence.reap_hooks.append(node.reaped)  # a dead owner's Janus mountpoints go too
        return cls(presence=presence, registry=StreamRegistry(events=presence, hooks=node), node=node)

    async def start(self) -> None:
        await self.presence.start()
        await self.registry.start()
        if self.node is not None:
            await self.node.serve(self.router.handle)

    async def drain(self) -> None:
        """Graceful shutdown: every socket told the server restarts, then everything closed."""
        await self.presence.restarting()
        await self.aclose()

    async def aclose(self) -> None:
        """Close once; later (or concurrent) calls wait for the same closing."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._aclose())
        await asyncio.shield(self._closing)

    async def _aclose(self) -> None:
        # Streams first: ending them still publishes through presence (and undoes their relays).
        await self.registry.aclose()
        if self.node is not None:
            await self.node.aclose()
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
