"""Presence: who is online and who is live, shared between processes, told to friends only.

`Presence` keeps the state in a `PresenceStore` (`streams.presence.redis_store.RedisStore` with
per-process keys and expiry, or `streams.presence.store.MemoryStore` without REDIS_URL), tells
friends of each change through its `streams.presence.publisher.Publisher` over the presence bus
(with the store's per-user sequence number; what cannot go out during an outage waits in the
`Outbox`), and answers the reads (`streams.presence.snapshot`). Every heartbeat it refreshes
this process's key, reaps dead processes (`reap_hooks` hear of each), finishes grace periods,
and now and then the `Reconciler` corrects what the database says to what the store knows.
Background work starts on `start()` or the first socket and stops in `aclose()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from streams.presence import snapshot as presence_snapshot
from streams.presence.bus import Bus, LocalBus, RedisBus
from streams.presence.database import PresenceDatabase
from streams.presence.outbox import STORE_ERRORS, Outbox
from streams.presence.publisher import Publisher
from streams.presence.reconcile import Reconciler
from streams.presence.redis_store import RedisStore
from streams.presence.sockets import LocalSockets
from streams.presence.store import MemoryStore, PresenceStore, Reaped, StreamState
from streams.presence.stream_news import StreamNews
from streams.recordings import service as recordings
from users.models import User

__all__ = ["STORE_ERRORS", "Presence"]
log = logging.getLogger(__name__)
BUS_READY_S = 2.0  # at start-up, wait this long at most for the bus subscription


def _default_store() -> PresenceStore:
    if not settings.REDIS_URL:
        return MemoryStore()
    pid = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
    return RedisStore(settings.REDIS_URL, settings.PRESENCE_REDIS_PREFIX, pid)


def _bus_for(store: PresenceStore) -> Bus:
    if isinstance(store, RedisStore):
        return RedisBus(store.redis, store.url, f"{store.prefix}:bus")
    return LocalBus()


class Presence(StreamNews):
    """Implements `streams.events.StreamEvents` (its stream side in `StreamNews`); one per
    process, owned by `Services`."""

    def __init__(
        self,
        *,
        store: PresenceStore | None = None,
        grace_s: float | None = None,
        ttl_s: float | None = None,
        heartbeat_s: float | None = None,
    ) -> None:
        self.store = store if store is not None else _default_store()
        self.grace_s = settings.PRESENCE_GRACE_S if grace_s is None else grace_s
        self.ttl_s = settings.PRESENCE_TTL_S if ttl_s is None else ttl_s
        self.heartbeat_s = settings.PRESENCE_HEARTBEAT_S if heartbeat_s is None else heartbeat_s
        self.sweep_s = max(self.ttl_s, self.heartbeat_s)
        self.bus = _bus_for(self.store)
        self.sockets = LocalSockets()  # this process's open WebSockets
        # Called with what each reap found (dead processes' ids, users, streams), after presence's
        # own clean-up: other services that keep per-process state clean theirs here.
        self.reap_hooks: list[Callable[[Reaped], Awaitable[None]]] = []
        self._local: Counter[int] = Counter()  # presence sockets open in this process
        self._untold: Counter[int] = Counter()  # closed sockets the store did not hear of (yet)
        self._owned: dict[int, StreamState] = {}  # streams this process reported started
        self._timers: dict[int, asyncio.Task[None]] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()
        self._closed = False
        self._last_sweep = float("-inf")
        self._db = PresenceDatabase()
        self._publisher = Publisher(self._db, self.bus)
        self._outbox = Outbox()
        self._reconciler = Reconciler(
            self.store, self._db, self._publisher, ttl_ms=self._ttl_ms, local_streams=lambda: set(self._owned)
        )

    @property
    def _grace_ms(self) -> int:
        return int(self.grace_s * 1000)

    @property
    def _ttl_ms(self) -> int:
        return int(self.ttl_s * 1000)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._ticker is not None:
            return
        async with self._start_lock:
            if self._ticker is not None or self._closed:
                return
            if isinstance(self.store, MemoryStore):
                # This process is the only one: nobody can be online before its first socket.
                await self._db.run(User.objects.filter(is_online=True).update, is_online=False)
            self._listener = asyncio.create_task(
                self.bus.run(self.sockets.deliver, self.sockets.resync), name="presence-bus"
            )
            with contextlib.suppress(TimeoutError):  # Redis down at start-up: the bus retries
                async with asyncio.timeout(BUS_READY_S):
                    await self.bus.tried.wait()
            try:
                await self._tick()
            except STORE_ERRORS:
                log.warning("Presence store unreachable at start-up; the heartbeat retries", exc_info=True)
            self._ticker = asyncio.create_task(self._tick_loop(), name="presence-heartbeat")

    async def aclose(self) -> None:
        self._closed = True
        tasks = [t for t in (self._ticker, self._listener, *self._timers.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._timers.clear()
        if self._ticker is not None:
            self._ticker = None
            with contextlib.suppress(*STORE_ERRORS):
                reaped = await self.store.leave(self._grace_ms)
                await self._ended(reaped.ended)
                if isinstance(self.store, MemoryStore):  # no other process will finish these
                    for uid in reaped.in_grace:
                        await self._expire(uid)
        await self.bus.aclose()
        await self.store.aclose()
        await self._db.aclose()

    async def restarting(self) -> None:
        """The server is shutting down: every open socket is told and closed (4012)."""
        await self.sockets.restarting()

    async def ping(self) -> None:
        """A round trip to the store itself (Redis), for /healthz; raises STORE_ERRORS."""
        await self.store.ping()

    async def _tick_loop(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await self._tick()
            except STORE_ERRORS as exc:
                if not failing:  # one line per outage, not one per beat
                    log.warning(
                        "Presence heartbeat failed (%s); retrying every %.1f s", exc, self.heartbeat_s
                    )
                failing = True
                continue
            if failing:
                log.info("Presence heartbeat works again.")
                failing = False

    async def _tick(self) -> None:
        """Heartbeat, reap dead processes, finish due grace periods, send held-back news, and
        now and then reconcile the database with the store."""
        if await self.store.beat(self._ttl_ms):
            self._untold.clear()  # restored from our own counts: nothing left to tell
            for uid, seq in await self.store.restore(dict(self._local), dict(self._owned)):
                await self._announce(uid, True, seq)
        await self._tell_closed_sockets()
        await self._reaped(await self.store.reap(self._grace_ms))
        for uid in await self.store.due():
            await self._expire(uid)
        await self._outbox.flush()
        now = time.monotonic()
        if self._reconciler.suspecting or now - self._last_sweep >= self.sweep_s:
            self._last_sweep = now
            try:
                await self._reconciler.sweep(lease_ms=int(self.sweep_s * 2000))
            except STORE_ERRORS:
                log.debug("Reconciling presence failed; the next sweep retries", exc_info=True)

    async def _reaped(self, reaped: Reaped) -> None:
        if reaped.processes:
            log.info(
                "Reaped %d dead process(es): %d users in grace, %d streams ended",
                len(reaped.processes),
                len(reaped.in_grace),
                len(reaped.ended),
            )
        for uid in reaped.in_grace:
            self._schedule_expire(uid)
        await self._ended(reaped.ended)
        if reaped.processes:
            for hook in self.reap_hooks:
                await hook(reaped)

    async def _ended(self, ended: list[tuple[int, int]]) -> None:
        """Streams whose process died: the live path cannot clear their flag or finish their
        recording, so we do (held in the outbox while the database is down)."""
        for uid, seq in ended:
            publish = functools.partial(
                self._publisher.publish_stream, uid, seq, None, flags={"is_streaming": False}
            )
            await self._outbox.send(f"s:{uid}", publish)
            recover = functools.partial(self._db.run, recordings.recover_unfinished, owners=[uid])
            await self._outbox.send(f"recover:{uid}", recover)

    async def _announce(self, user_id: int, online: bool, seq: int) -> None:
        publish = functools.partial(self._publisher.announce, user_id, online, seq)
        await self._outbox.send(f"p:{user_id}", publish)

    # -- sockets -----------------------------------------------------------------------------

    async def socket_opened(self, user_id: int) -> None:
        """Count a new socket; raises STORE_ERRORS only if it was not counted."""
        await self.start()
        seq = await self.store.connect(user_id)
        self._local[user_id] += 1
        if seq:
            await self._announce(user_id, True, seq)

    async def socket_count(self, user_id: int) -> int:
        """The user's open presence sockets over all processes."""
        return await self.store.count(user_id)

    async def socket_closed(self, user_id: int) -> None:
        """Uncount a socket; if the store cannot be told now, the next heartbeat tells it."""
        self._local[user_id] -= 1
        if self._local[user_id] <= 0:
            del self._local[user_id]
        self._untold[user_id] += 1
        try:
            await self._tell_closed_sockets()
        except STORE_ERRORS as exc:
            log.info("User %s's closed socket is told to the store later: %s", user_id, exc)

    async def _tell_closed_sockets(self) -> None:
        # Without this, one failed call would leave the user online in the store for good.
        for user_id in list(self._untold):
            while self._untold[user_id] > 0:
                self._untold[user_id] -= 1  # claimed before the await: a concurrent call skips it
                try:
                    last = await self.store.disconnect(user_id, self._grace_ms)
                except STORE_ERRORS:
                    self._untold[user_id] += 1
                    raise
                if last:
                    self._schedule_expire(user_id)
            if self._untold[user_id] <= 0:
                del self._untold[user_id]

    def _schedule_expire(self, user_id: int) -> None:
        if self._closed:
            return
        old = self._timers.pop(user_id, None)
        if old is not None:
            old.cancel()
        self._timers[user_id] = asyncio.create_task(self._expire_later(user_id))

    async def _expire_later(self, user_id: int) -> None:
        await asyncio.sleep(self.grace_s)
        self._timers.pop(user_id, None)
        try:
            await self._expire(user_id)
        except STORE_ERRORS:
            log.info("Grace expiry for user %s failed; the heartbeat retries", user_id)

    async def _expire(self, user_id: int) -> None:
        seq = await self.store.expire(user_id)
        if seq:
            await self._announce(user_id, False, seq)

    async def is_online(self, user_id: int) -> bool:
        try:
            return await self.store.count(user_id) > 0
        except STORE_ERRORS:
            log.warning("Presence store unreachable; reporting user %s online", user_id, exc_info=True)
            return True  # never end a stream because Redis blinked

    # -- reads (built in streams.presence.snapshot) ------------------------------------------

    async def snapshot(self, user_id: int) -> presence_snapshot.Snapshot:
        """Every friend's state and my pending requests: the socket's first message and the poll."""
        return await presence_snapshot.snapshot(self.store, self._db, user_id)

    async def friend_entry(self, user_id: int, username: str) -> dict[str, Any]:
        return await presence_snapshot.friend_entry(self.store, user_id, username)

    async def stream_state(self, user_id: int, username: str) -> dict[str, Any]:
        return await presence_snapshot.stream_state(self.store, user_id, username)
