"""Who may hear a stream is checked for as long as they listen: revocations reach every process.

When a friendship ends (either side removes the other), neither may go on hearing the other's
stream. `users.signals.friendship_removed` fires once, in the process that committed the change,
while the listener's connection may live in any process (the one holding the stream). So the
receiver here only broadcasts the pair on the channel layer (`ACCESS_GROUP`); each
`StreamRegistry` subscribes one channel of its own (`AccessWatch`, started and stopped with it)
and closes the listener connections of its own sessions that the pair concerns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import BaseChannelLayer, get_channel_layer
from redis.exceptions import RedisError

from streams.live.tasks import TaskSet
from users import signals
from users.models import User

log = logging.getLogger(__name__)

ACCESS_GROUP = "live.access"
_MESSAGE = "live.access_revoked"
LAYER_ERRORS = (RedisError, OSError)
RETRY_S = 1.0
# channels' groups forget a member after `group_expiry` (a day by default): rejoin well before.
REJOIN_S = 3600.0

Revoked = Callable[[int, int], Awaitable[None]]  # (user a, user b): neither may hear the other


def connect() -> None:
    """Called once from StreamsConfig.ready()."""
    signals.friendship_removed.connect(friendship_removed, dispatch_uid="live.access.friendship_removed")


def friendship_removed(sender: object, user: User, friend: User, **kwargs: object) -> None:
    """After the unfriending committed: tell every process (a lost message is logged)."""
    message = {"type": _MESSAGE, "users": [user.pk, friend.pk]}
    try:
        async_to_sync(get_channel_layer().group_send)(ACCESS_GROUP, message)
    except LAYER_ERRORS:
        log.error(
            "Could not tell the live path that %s and %s are no longer friends", user, friend, exc_info=True
        )


class AccessWatch:
    """One process's subscription to revocations; calls `revoked(a, b)` for each."""

    def __init__(self, revoked: Revoked, layer: BaseChannelLayer | None = None) -> None:
        self._revoked = revoked
        self._layer = layer
        self._channel: str | None = None
        self._tasks = TaskSet("live-access")

    async def start(self) -> None:
        self._layer = self._layer or get_channel_layer()
        if self._layer is None:  # no channel layer configured: nothing can arrive
            return
        # The default prefix, as consumers': with channels-redis a channel of its own prefix
        # would hold the process's receive turn and starve every other channel.
        self._channel = await self._layer.new_channel()
        await self._join()
        self._tasks.spawn(self._receive(), "receive")
        self._tasks.spawn(self._rejoin(), "rejoin")

    async def aclose(self) -> None:
        await self._tasks.cancel_all()
        if self._layer is not None and self._channel is not None:
            with contextlib.suppress(*LAYER_ERRORS):
                await self._layer.group_discard(ACCESS_GROUP, self._channel)

    async def _join(self) -> None:
        if self._layer is not None and self._channel is not None:
            await self._layer.group_add(ACCESS_GROUP, self._channel)

    async def _rejoin(self) -> None:
        while True:
            await asyncio.sleep(REJOIN_S)
            try:
                await self._join()
            except LAYER_ERRORS as exc:
                log.warning("Could not renew the live path's revocation subscription: %s", exc)

    async def _receive(self) -> None:
        layer, channel = self._layer, self._channel
        if layer is None or channel is None:
            return
        while True:
            try:
                message: dict[str, Any] = await layer.receive(channel)
            except LAYER_ERRORS as exc:  # the layer is down: try again shortly, keep the loop
                log.warning("Revocations cannot be received right now: %s", exc)
                await asyncio.sleep(RETRY_S)
                continue
            users = message.get("users")
            if message.get("type") == _MESSAGE and isinstance(users, list) and len(users) == 2:
                await self._revoked(int(users[0]), int(users[1]))
