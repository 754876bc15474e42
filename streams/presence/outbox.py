"""Presence news that could not go out yet (the database or Redis is down), sent again on every
heartbeat until it does: an outage delays what friends hear, it never loses it.

Entries are keyed like the events ("p:<uid>", "s:<uid>", ...): a later entry replaces an
earlier one, and a held entry is dropped once a later one under its key went out.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from django.db import DatabaseError
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
# Redis (or the database) unreachable: presence degrades, logged, instead of failing its caller.
STORE_ERRORS = (RedisError, OSError, DatabaseError)
Send = Callable[[], Awaitable[None]]


class Outbox:
    def __init__(self) -> None:
        self._pending: dict[str, tuple[int, Send]] = {}  # key -> (order of submission, send)
        self._order = 0
        self._failing = False

    def __len__(self) -> int:
        return len(self._pending)

    async def send(self, key: str, send: Send) -> bool:
        """Send now; if that fails, keep it for `flush`. True if it went out now."""
        self._order += 1
        order = self._order
        try:
            await send()
        except STORE_ERRORS as exc:
            self._keep(key, order, send, exc)
            return False
        old = self._pending.get(key)
        if old is not None and old[0] < order:
            del self._pending[key]
        if self._failing and not self._pending:
            self._failing = False
            log.info("Presence caught up.")
        return True

    def _keep(self, key: str, order: int, send: Send, exc: BaseException) -> None:
        old = self._pending.get(key)
        if old is None or old[0] < order:
            self._pending[key] = (order, send)
        if not self._failing:  # one line per outage, not one per event
            self._failing = True
            log.warning("Presence news is held back until the store answers again: %s", exc)

    async def flush(self) -> None:
        """Send what is held, oldest first; stop at the first failure (the outage goes on)."""
        if not self._pending:
            return
        sent = 0
        for key, (order, send) in list(self._pending.items()):
            try:
                await send()
            except STORE_ERRORS:
                return
            if self._pending.get(key, (None,))[0] == order:
                del self._pending[key]
            sent += 1
        if self._failing:
            self._failing = False
            log.info("Presence caught up: %d held-back update(s) sent.", sent)
