"""The stream side of presence (`streams.events.StreamEvents`, which `Presence` implements):
claims before a start, and each stream change told to friends and page viewers.

A mixin of `streams.presence.service.Presence`, whose state it uses: the store, the publisher,
the outbox (what cannot be told during an outage is told once it can) and `_owned`, the streams
this process reported started (written back to Redis by the heartbeat after Redis lost them).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging

from fc25_denoise.errors import Unavailable
from streams.presence.database import iso
from streams.presence.outbox import STORE_ERRORS, Outbox
from streams.presence.publisher import Publisher
from streams.presence.store import PresenceStore, StreamState

log = logging.getLogger(__name__)
RECORDING_STOPPED = {"storage_full": "Recording stopped: storage full; you are still live."}
SOURCE = {True: "No audio from the broadcaster right now; waiting for it.", False: "Audio is back."}


class StreamNews:
    store: PresenceStore
    heartbeat_s: float
    _owned: dict[int, StreamState]
    _publisher: Publisher
    _outbox: Outbox

    async def start(self) -> None: ...  # Presence's: the heartbeat and the bus

    async def claim_stream(self, user_id: int) -> bool:
        """May this process start the user's stream? False: a live process holds it.
        Unavailable when the store cannot tell (down, or just restarted)."""
        try:
            await self.start()
            # Right after Redis lost its data, live processes restore their streams on their
            # next heartbeat: until two have passed, nobody can tell whether the user is live.
            answer = await self.store.claim(user_id, young_ms=int(self.heartbeat_s * 2000))
        except STORE_ERRORS as exc:
            raise Unavailable("Live status is briefly unavailable; try again in a few seconds.") from exc
        if answer is None:
            raise Unavailable("Live status is being restored; try again in a few seconds.")
        return answer

    async def release_claim(self, user_id: int) -> None:
        """A start that failed: the claim goes (it would also run out by itself)."""
        try:
            await self.store.release(user_id)
        except STORE_ERRORS as exc:
            log.info("Could not release user %s's stream claim: %s", user_id, exc)

    async def stream_started(
        self, user_id: int, *, started_at: dt.datetime, denoise: bool, atten_lim_db: float
    ) -> None:
        state = StreamState(started_at=iso(started_at) or "", denoise=denoise, atten_lim_db=atten_lim_db)
        self._owned[user_id] = state
        try:
            await self.start()
            seq = await self.store.stream_start(user_id, state)
        except STORE_ERRORS:  # the heartbeat writes it once Redis is back (restore)
            log.warning("Could not record the start of user %s's stream", user_id, exc_info=True)
            return
        await self._outbox.send(
            f"s:{user_id}", functools.partial(self._publisher.publish_stream, user_id, seq, state)
        )

    async def stream_ended(self, user_id: int) -> None:
        self._owned.pop(user_id, None)
        seq = 0

        async def end() -> None:
            nonlocal seq
            if not seq:  # the store first (retried too while Redis is down), then the news
                seq = await self.store.stream_end(user_id)
            await self._publisher.publish_stream(user_id, seq, None)

        await self._outbox.send(f"s:{user_id}", end)

    async def recording_stopped(self, user_id: int, reason: str) -> None:
        """The stream goes on without its recording: the broadcaster's pages are told."""
        if user_id in self._owned:
            self._owned[user_id].recording = reason
        event = {
            "type": "recording",
            "state": "stopped",
            "reason": reason,
            "message": RECORDING_STOPPED.get(reason, "Recording stopped; you are still live."),
        }
        try:
            await self.store.stream_update(user_id, recording=reason)
            await self._publisher.publish_page(user_id, event, own=True)
        except STORE_ERRORS:
            log.warning("Could not tell user %s their recording stopped", user_id, exc_info=True)

    async def source_stalled(self, user_id: int, stalled: bool) -> None:
        """The broadcaster's audio stopped coming, or came back: the stream's page viewers
        (its listeners) and the broadcaster's own pages are told, instead of hearing silence."""
        event = {"type": "source", "state": "stalled" if stalled else "ok", "message": SOURCE[stalled]}
        try:
            await self._publisher.publish_page(user_id, event, own=True)
        except STORE_ERRORS:
            log.warning("Could not tell user %s's listeners the source stalled", user_id, exc_info=True)

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
