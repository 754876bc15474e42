"""Presence: who is online and who is live, shared between processes, told to friends only.

`Presence` keeps the state in a `PresenceStore` (`streams.presence.redis_store.RedisStore` with
per-process keys and expiry, or `streams.presence.store.MemoryStore` without REDIS_URL), tells
friends of each change through its `streams.presence.publisher.Publisher` (with the store's
per-user sequence number), and answers the reads (`streams.presence.snapshot`): a user's
snapshot, one friend's entry, the state of one stream. Background work (heartbeat, reaper,
grace timers) starts on `start()` or the first socket and stops in `aclose()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import secrets
import socket
from collections import Counter
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from redis.exceptions import RedisError

from streams.presence import snapshot as presence_snapshot
from streams.presence.database import PresenceDatabase, iso
from streams.presence.publisher import Publisher
from streams.presence.redis_store import RedisStore
from streams.presence.store import MemoryStore, PresenceStore, Reaped, StreamState
from streams.recordings import service as recordings
from users.models import User

log = logging.getLogger(__name__)
# Redis (or the database) unreachable: presence degrades, logged, instead of failing its caller.
STORE_ERRORS = (RedisError, OSError, DatabaseError)


def _default_store() -> PresenceStore:
    if not settings.REDIS_URL:
        return MemoryStore()
    pid = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
    return RedisStore(settings.REDIS_URL, settings.PRESENCE_REDIS_PREFIX, pid)


class Presence:
    """Implements `streams.events.StreamEvents`; one per process, owned by `Services`."""

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
        self._local: Counter[int] = Counter()  # presence sockets open in this process
        self._untold: Counter[int] = Counter()  # closed sockets the store did not hear of (yet)
        self._owned: dict[int, StreamState] = {}  # streams this process reported started
        self._timers: dict[int, asyncio.Task[None]] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()
        self._closed = False
        self._db = PresenceDatabase()
        self._publisher = Publisher(self._db)

    @property
    def _grace_ms(self) -> int:
        return int(self.grace_s * 1000)

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
            await self._tick()
            self._ticker = asyncio.create_task(self._tick_loop(), name="presence-heartbeat")

    async def aclose(self) -> None:
        self._closed = True
        tasks = [t for t in (self._ticker, *self._timers.values()) if t is not None]
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
        await self.store.aclose()
        await self._db.aclose()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await self._tick()
            except STORE_ERRORS:
                log.warning("Presence heartbeat failed; retrying in %.1f s", self.heartbeat_s, exc_info=True)

    async def _tick(self) -> None:
        """Heartbeat, then reap dead processes, then finish grace periods that are due."""
        if await self.store.beat(int(self.ttl_s * 1000)):
            self._untold.clear()  # restored from our own counts: nothing left to tell
            for uid, seq in await self.store.restore(dict(self._local), dict(self._owned)):
                await self._publisher.announce(uid, True, seq)
        await self._tell_closed_sockets()
        await self._reaped(await self.store.reap(self._grace_ms))
        for uid in await self.store.due():
            await self._expire(uid)

    async def _reaped(self, reaped: Reaped) -> None:
        if reaped.in_grace or reaped.ended:
            log.info(
                "Reaped a dead process: %d users in grace, %d streams ended",
                len(reaped.in_grace),
                len(reaped.ended),
            )
        for uid in reaped.in_grace:
            self._schedule_expire(uid)
        await self._ended(reaped.ended)

    async def _ended(self, ended: list[tuple[int, int]]) -> None:
        """Streams whose process died: the live path cannot clear their flag or finish their
        recording, so we do."""
        for uid, seq in ended:
            await self._publisher.publish_stream(uid, seq, None, flags={"is_streaming": False})
        if not ended:
            return
        try:
            await self._db.run(recordings.recover_unfinished, owners=[uid for uid, _ in ended])
        except DatabaseError:  # the rows stay unfinished until a process starts and recovers them
            log.exception("Could not finish the recordings of a dead process's streams.")

    # -- sockets -----------------------------------------------------------------------------

    async def socket_opened(self, user_id: int) -> None:
        """Count a new socket; raises STORE_ERRORS only if it was not counted."""
        await self.start()
        seq = await self.store.connect(user_id)
        self._local[user_id] += 1
        if seq:
            try:
                await self._publisher.announce(user_id, True, seq)
            except STORE_ERRORS:
                log.warning("Could not tell user %s's friends they came online", user_id, exc_info=True)

    async def socket_count(self, user_id: int) -> int:
        """The user's open presence sockets over all processes."""
        return await self.store.count(user_id)

    async def socket_closed(self, user_id: int) -> None:
        """Uncount a socket; if the store cannot be told now, the next heartbeat tells it."""
        self._local[user_id] -= 1
        if self._local[user_id] <= 0:
            del self._local[user_id]
        self._untold[user_id] += 1
        await self._tell_closed_sockets()

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
            log.warning("Grace expiry for user %s failed; the reaper retries", user_id, exc_info=True)

    async def _expire(self, user_id: int) -> None:
        seq = await self.store.expire(user_id)
        if seq:
            await self._publisher.announce(user_id, False, seq)

    async def is_online(self, user_id: int) -> bool:
        try:
            return await self.store.count(user_id) > 0
        except STORE_ERRORS:
            log.warning("Presence store unreachable; reporting user %s online", user_id, exc_info=True)
            return True  # never end a stream because Redis blinked

    # -- streams (StreamEvents) --------------------------------------------------------------

    async def stream_started(
        self, user_id: int, *, started_at: dt.datetime, denoise: bool, atten_lim_db: float
    ) -> None:
        state = StreamState(started_at=iso(started_at) or "", denoise=denoise, atten_lim_db=atten_lim_db)
        self._owned[user_id] = state
        try:
            await self.start()
            await self._publisher.publish_stream(
                user_id, await self.store.stream_start(user_id, state), state
            )
        except STORE_ERRORS:
            log.warning("Could not publish the start of user %s's stream", user_id, exc_info=True)

    async def stream_ended(self, user_id: int) -> None:
        self._owned.pop(user_id, None)
        try:
            await self._publisher.publish_stream(user_id, await self.store.stream_end(user_id), None)
        except STORE_ERRORS:
            log.warning("Could not publish the end of user %s's stream", user_id, exc_info=True)

    async def settings_changed(self, user_id: int, *, denoise: bool, atten_lim_db: float) -> None:
        if user_id in self._owned:
            self._owned[user_id].denoise, self._owned[user_id].atten_lim_db = denoise, atten_lim_db
        event = {"type": "settings", "denoise": denoise, "atten_lim_db": atten_lim_db}
        try:
            await self.store.stream_update(user_id, denoise=denoise, atten_lim_db=atten_lim_db)
            await self._publisher.publish_page(user_id, event, own=False)
        except STORE_ERRORS:
            log.warning("Could not publish user %s's new settings", user_id, exc_info=True)

    async def listeners_changed(self, user_id: int, count: int) -> None:
        if user_id in self._owned:
            self._owned[user_id].listeners = count
        try:
            await self.store.stream_update(user_id, listeners=count)
            await self._publisher.publish_page(user_id, {"type": "listeners", "count": count}, own=True)
        except STORE_ERRORS:
            log.warning("Could not publish user %s's listener count", user_id, exc_info=True)

    # -- reads (built in streams.presence.snapshot) ------------------------------------------

    async def snapshot(self, user_id: int) -> presence_snapshot.Snapshot:
        """Every friend's state and my pending requests: the socket's first message and the poll."""
        return await presence_snapshot.snapshot(self.store, self._db, user_id)

    async def friend_entry(self, user_id: int, username: str) -> dict[str, Any]:
        return await presence_snapshot.friend_entry(self.store, user_id, username)

    async def stream_state(self, user_id: int, username: str) -> dict[str, Any]:
        return await presence_snapshot.stream_state(self.store, user_id, username)
