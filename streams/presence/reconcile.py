"""The reconciler: what the database says about users, corrected to what the presence store
knows, so a process that died, or could not write during an outage, leaves nothing wrong.

Found and fixed (friends are told, like any change):
- `is_streaming` on, or a recording unfinished, while no live process holds the user's stream
  (its process died after Redis lost its state, or while the database was down): the flag is
  cleared and the recording finished from its file (`recover_unfinished`);
- `is_online` on while the store does not count the user online (left while Redis was down).

Absences prove something only once the store has seen every live process's heartbeat since
it last lost its data (`store.age_ms` above the TTL: each live process restores its state on
its next beat), and a suspect is acted on only if the next sweep finds it again, so a change
that falls between the database read and the store read is never mistaken for stale state.
One process sweeps at a time (a lease in the store).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from streams.presence.database import PresenceDatabase, flagged_users
from streams.presence.publisher import Publisher
from streams.presence.store import PresenceStore
from streams.recordings import service as recordings

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(
        self,
        store: PresenceStore,
        db: PresenceDatabase,
        publisher: Publisher,
        *,
        ttl_ms: int,
        local_streams: Callable[[], set[int]],
    ) -> None:
        self._store, self._db, self._publisher = store, db, publisher
        self._ttl_ms = ttl_ms
        self._local_streams = local_streams
        self._suspects: tuple[set[int], set[int]] = (set(), set())

    @property
    def suspecting(self) -> bool:
        """True while a suspect waits for its confirming sweep."""
        return bool(self._suspects[0] or self._suspects[1])

    async def sweep(self, lease_ms: int) -> None:
        """One pass; raises STORE_ERRORS when the database or the store cannot be read."""
        if self._store.age_ms < self._ttl_ms or not await self._store.lease(lease_ms):
            return
        streaming, online = await self._db.run(flagged_users)
        held = await self._store.held(streaming) | self._local_streams()
        stale_streams = set(streaming) - held
        stale_online = set(online) - await self._store.online(online)
        old_streams, old_online = self._suspects
        self._suspects = (stale_streams, stale_online)
        for uid in sorted(stale_streams & old_streams):
            await self._end_stream(uid)
            self._suspects[0].discard(uid)
        for uid in sorted(stale_online & old_online):
            await self._publisher.announce(uid, False, await self._store.next_seq(f"p:{uid}"))
            self._suspects[1].discard(uid)
            log.info("User %s was shown online by a process that is gone; now offline.", uid)

    async def _end_stream(self, uid: int) -> None:
        if uid in await self._store.held([uid]):  # went live again since the last look
            return
        seq = await self._store.next_seq(f"s:{uid}")
        await self._publisher.publish_stream(uid, seq, None, flags={"is_streaming": False})
        recovered = await self._db.run(recordings.recover_unfinished, owners=[uid])
        log.info(
            "User %s's stream had no live process; ended, %d recording(s) finished from their files.",
            uid,
            len(recovered),
        )
