"""Who may be live: a user's stream is claimed through presence when it starts, and given back
durably when it ends, so no outage can leave a user locked out or shown live for good.

The lock is presence's claim (`StreamEvents.claim_stream`), which a dead process stops holding
when its heartbeat expires; `users.User.is_streaming` only reflects it. A flag found on at a
start was left by a stream that ended without the database hearing of it: it is taken over,
and that stream's recording finished from its file.

The end is written in one transaction (the recording row finished, the flag cleared) and only
then told to presence, which ends the stream for friends: until then the stream stays held by
this process, so nothing else concludes it is stale. If the database is down, the end waits
here and is retried every few seconds until it goes through; a new start of the same user
first finishes it. Should this process die meanwhile, presence's reconciler (on a surviving or
the next process) finishes what is left.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from channels.db import database_sync_to_async
from django.db import DatabaseError, transaction

from fc25_denoise.errors import Conflict, NotFound, Unavailable
from streams.events import StreamEvents, tell
from streams.live import state as live_state
from streams.live.tasks import detached
from streams.recordings import service as recordings
from streams.recordings.wav_file import RecordingStats

log = logging.getLogger(__name__)
RETRY_MIN_S, RETRY_MAX_S = 0.5, 2.0
UNAVAILABLE = "The database is briefly unavailable; try again in a few seconds."


@dataclass
class _End:
    user_id: int
    recording_id: int
    stats: RecordingStats | None  # None: the files' figures are unknown; measure them
    attempts: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)


def _write_end(end: _End) -> None:
    with transaction.atomic():
        try:
            if end.stats is None:
                recordings.recover_unfinished(owners=[end.user_id])
            else:
                recordings.finalize_recording(end.recording_id, end.stats)
        except NotFound:
            log.warning("Recording %s vanished before it was finalized.", end.recording_id)
        live_state.set_streaming(end.user_id, False)


def _take_flag(user_id: int) -> bool:
    """Turn the flag on; True if it already was (left on by a stream that is gone)."""
    stale = live_state.is_streaming(user_id)
    live_state.set_streaming(user_id, True)
    if stale:
        recordings.recover_unfinished(owners=[user_id])
    return stale


class Ownership:
    def __init__(self, events: StreamEvents) -> None:
        self.events = events
        self._ends: dict[int, _End] = {}  # written ends waiting for the database, by user
        self._retries: set[asyncio.Task[None]] = set()

    def waiting(self) -> set[int]:
        """Users whose stream ended here but whose end the database has not taken yet."""
        return set(self._ends)

    async def claim(self, user_id: int) -> None:
        """Before a start: Conflict if a live process holds the user's stream, Unavailable if
        that cannot be known or written now."""
        if user_id in self._ends and not await self._write(self._ends[user_id]):
            raise Unavailable(UNAVAILABLE)
        if not await self.events.claim_stream(user_id):
            raise Conflict("You are already live (maybe from another tab or device).")
        try:
            stale = await database_sync_to_async(_take_flag)(user_id)
        except DatabaseError as exc:
            await self.events.release_claim(user_id)
            raise Unavailable(UNAVAILABLE) from exc
        if stale:
            log.info("User %s's live flag was left on by a stream that ended unseen; taken over.", user_id)

    async def release(self, user_id: int) -> None:
        """A start that failed after `claim`: the flag off again, the claim given up."""
        try:
            await database_sync_to_async(live_state.set_streaming)(user_id, False)
        except DatabaseError:  # the reconciler clears it once the claim is gone
            log.warning("Could not clear user %s's live flag after a failed start.", user_id)
        await self.events.release_claim(user_id)

    async def give_back(self, user_id: int, recording_id: int, stats: RecordingStats | None) -> None:
        """The durable end of a stream: written now, or retried in the background until the
        database takes it; presence is told once it is written."""
        end = _End(user_id, recording_id, stats)
        self._ends[user_id] = end
        if not await self._write(end):
            task = detached(self._retry(end), f"stream-end-{user_id}")
            self._retries.add(task)
            task.add_done_callback(self._retries.discard)

    async def _write(self, end: _End) -> bool:
        if end.done.is_set():
            return True
        try:
            await database_sync_to_async(_write_end)(end)
        except DatabaseError as exc:
            if not end.attempts:
                log.warning("The end of user %s's stream waits for the database: %s", end.user_id, exc)
            end.attempts += 1
            return False
        if end.done.is_set():  # a concurrent attempt got there first
            return True
        end.done.set()
        if self._ends.get(end.user_id) is end:
            del self._ends[end.user_id]
        if end.attempts:
            log.info("The end of user %s's stream is written (after %d retries).", end.user_id, end.attempts)
        await tell(self.events.stream_ended(end.user_id))  # presence retries its own news
        return True

    async def _retry(self, end: _End) -> None:
        delay = RETRY_MIN_S
        while not await self._write(end):
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    async def aclose(self) -> None:
        """Shutdown: one last try for each waiting end; what is left, the reconciler finishes."""
        for task in list(self._retries):
            task.cancel()
        await asyncio.gather(*self._retries, return_exceptions=True)
        for end in list(self._ends.values()):
            if not await self._write(end):
                log.warning("User %s's stream end is left for recovery (database down).", end.user_id)
