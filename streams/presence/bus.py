"""The presence bus: events about users, from whichever process noticed the change to the
processes holding their friends' presence sockets.

One Redis PUBLISH per event on our own connection (channel `P:bus`): every process hears it
and hands it to its own sockets of the users in `to` (`streams.presence.sockets`). That is one
round trip per event whatever the number of friends, and no group lookups in the channel
layer's keys. Pub/sub keeps nothing for a process that is not subscribed, so when the
subscription breaks and comes back the bus calls `resync`: the process's presence sockets are
sent a fresh snapshot. `LocalBus` is the one-process variant (no Redis).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
Deliver = Callable[[dict[str, Any]], Awaitable[None]]
Resync = Callable[[], Awaitable[None]]
RETRY_MIN_S, RETRY_MAX_S = 0.2, 2.0
HEALTH_CHECK_S = 5
POLL_S = 1.0  # how long one read waits (between reads, redis-py runs its health check)


class Bus(Protocol):
    ready: asyncio.Event  # set while subscribed: events published now reach this process
    tried: asyncio.Event  # set once the first subscription attempt is over, however it went

    async def publish(self, message: dict[str, Any]) -> None: ...
    async def run(self, deliver: Deliver, resync: Resync) -> None: ...  # the listening task
    async def aclose(self) -> None: ...


class LocalBus:
    """One process: a published event is delivered at once."""

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.tried = asyncio.Event()
        self._deliver: Deliver | None = None

    async def publish(self, message: dict[str, Any]) -> None:
        if self._deliver is not None:
            await self._deliver(message)

    async def run(self, deliver: Deliver, resync: Resync) -> None:
        self._deliver = deliver
        self.ready.set()
        self.tried.set()
        await asyncio.Event().wait()  # nothing to listen to; cancelled at shutdown

    async def aclose(self) -> None:
        return None


class RedisBus:
    def __init__(self, publisher: aioredis.Redis, url: str, channel: str) -> None:
        self.ready = asyncio.Event()
        self.tried = asyncio.Event()
        self.channel = channel
        self._publisher = publisher  # the store's client: commands with timeouts
        # Its own client for the subscription: a subscribed connection only reads, for as long
        # as it lives, so a read timeout would end it; redis-py pings it every few seconds
        # instead, which finds a dead connection.
        self._listener = aioredis.Redis.from_url(
            url, socket_timeout=None, socket_connect_timeout=2.0, health_check_interval=HEALTH_CHECK_S
        )

    async def publish(self, message: dict[str, Any]) -> None:
        await self._publisher.publish(self.channel, json.dumps(message, separators=(",", ":")))

    async def run(self, deliver: Deliver, resync: Resync) -> None:
        delay, lost = RETRY_MIN_S, False
        while True:
            try:
                async with self._listener.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    self.ready.set()
                    self.tried.set()
                    if lost:
                        log.info("Presence bus subscribed again; sockets here resynchronise.")
                        lost = False
                        await resync()
                    delay = RETRY_MIN_S
                    while True:
                        raw = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL_S)
                        if raw is not None and raw["type"] == "message":
                            await deliver(json.loads(raw["data"]))
            except (RedisError, OSError) as exc:
                self.ready.clear()
                self.tried.set()
                if not lost:
                    log.warning("Presence bus lost its subscription (%s); retrying.", exc)
                lost = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    async def aclose(self) -> None:
        await self._listener.aclose()
