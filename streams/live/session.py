"""One live session: the broadcaster's peer connection, its audio pipeline and its listeners.

The media path itself is `streams.live.pipeline.AudioPipeline`; the fan-out `streams.live.fanout.Hub`. A
watchdog notices the ways a session ends by itself (no media, presence gone) and, like the
peers' state changes, reports the reason on `ended`; the `StreamRegistry` then calls `close()`,
which releases everything whatever the reason, and is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from denoise.engine import DeepFilterNet3
from denoise.pool import AudioProcessor
from fc25_denoise.errors import Conflict, Unavailable
from streams.live.fanout import Hub
from streams.live.metrics import Metrics
from streams.live.pipeline import AudioPipeline, detached
from streams.live.tracks import ListenerTrack
from streams.live.webrtc import Offer, answer_broadcaster, answer_listener, new_peer_connection
from streams.recordings.recorder import Recorder
from streams.recordings.wav_file import RecordingStats

log = logging.getLogger(__name__)

# What presence may raise when its store is down: such a check ends no stream.
PRESENCE_ERRORS: tuple[type[BaseException], ...] = (OSError, ConnectionError, TimeoutError)
try:
    from redis.exceptions import RedisError

    PRESENCE_ERRORS = (*PRESENCE_ERRORS, RedisError)
except ImportError:  # redis is optional without REDIS_URL
    pass


@dataclass(frozen=True)
class Timing:
    """When a session ends by itself (seconds); tests shorten them."""

    first_media_s: float = 15.0  # no media this long after start
    media_gap_s: float = 10.0  # media stopped this long
    offline_grace_s: float = 5.0  # broadcaster's presence gone this long (after being seen)
    watchdog_s: float = 1.0


@dataclass(frozen=True)
class SessionParts:
    """What the registry hands a session: shared services and this session's own resources."""

    processor: AudioProcessor
    recorder: Recorder
    metrics: Metrics
    encode_executor: Executor
    silence: bytes
    ice_servers: Callable[[], list[RTCIceServer]]  # per connection: TURN credentials expire
    is_online: Callable[[], Awaitable[bool]]
    listeners_changed: Callable[[int], None]
    max_listeners: int
    timing: Timing
    open_pcs: set[RTCPeerConnection] = field(default_factory=set)  # the registry's, until closed


class LiveSession:
    def __init__(
        self,
        *,
        user_id: int,
        session_id: str,
        recording_id: int,
        started_at: dt.datetime,
        parts: SessionParts,
    ) -> None:
        self.user_id = user_id
        self.session_id = session_id
        self.recording_id = recording_id
        self.started_at = started_at
        self._parts = parts
        self._metrics = parts.metrics
        self.hub = Hub(on_drop=parts.metrics.listener_packets_dropped.inc)
        self.media = AudioPipeline(
            processor=parts.processor,
            recorder=parts.recorder,
            hub=self.hub,
            metrics=parts.metrics,
            encode_executor=parts.encode_executor,
            on_end=self.request_end,
        )
        self.broadcaster: RTCPeerConnection | None = None
        self.listeners: dict[RTCPeerConnection, ListenerTrack] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._uncancellable: set[asyncio.Task[None]] = set()
        self.ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._closing: asyncio.Task[RecordingStats] | None = None
        self._created = time.monotonic()
        self._spawn(self._watchdog(), "watchdog")

    # -- state read by the API ----------------------------------------------------------------

    @property
    def denoise(self) -> bool:
        return self._parts.processor.enabled

    @property
    def atten_lim_db(self) -> float:
        return self._parts.processor.atten_lim_db

    @property
    def listener_count(self) -> int:
        return len(self.listeners)

    @property
    def delay_s(self) -> float:
        """The engine's constant delay (the same with denoising on or off)."""
        denoiser = self._parts.processor.denoiser
        if denoiser is not None and denoiser.format is not None:
            return denoiser.delay_ms / 1000.0
        return DeepFilterNet3.delay_samples / DeepFilterNet3.sample_rate

    def apply_settings(self, *, denoise: bool | None, atten_lim_db: float | None) -> None:
        """Live controls of the engine: effective from the next frame, no renegotiation."""
        if denoise is not None:
            self._parts.processor.enabled = denoise
        if atten_lim_db is not None:
            self._parts.processor.atten_lim_db = atten_lim_db

    def request_end(self, reason: str) -> None:
        if not self.ended.done():
            self.ended.set_result(reason)

    # -- peers -----------------------------------------------------------------------------------

    async def accept_broadcast(self, offer: Offer) -> RTCSessionDescription:
        if self.broadcaster is not None:
            raise Conflict("This session already has its broadcaster connection.")
        if self._closing is not None:
            raise Unavailable("This session is ending.")
        pc = self._new_pc()
        self.broadcaster = pc
        pc.on("connectionstatechange", lambda: self._broadcaster_state(pc))
        try:
            answer, track = await answer_broadcaster(pc, offer)
        except BaseException:
            self.broadcaster = None
            await self._close_pc(pc)
            raise
        self.attach(track)
        return answer

    def attach(self, track: MediaStreamTrack) -> None:
        """Start reading and processing the broadcaster's audio track."""
        self.media.start(track)

    async def add_listener(self, offer: Offer) -> RTCSessionDescription:
        if len(self.listeners) >= self._parts.max_listeners:
            raise Unavailable(
                f"This stream already has {self._parts.max_listeners} listeners; try again later."
            )
        if self._closing is not None:
            raise Unavailable("This stream is ending.")
        queue = self.hub.subscribe()
        track = ListenerTrack(
            queue,
            self._parts.silence,
            on_packet=self._packet_handed_off,
            on_silence=self._metrics.silence_packets.inc,
        )
        pc = self._new_pc()
        self.listeners[pc] = track
        self._metrics.listeners.inc()
        pc.on("connectionstatechange", lambda: self._listener_state(pc))
        try:
            answer = await answer_listener(pc, offer, track)
        except BaseException:
            await self.remove_listener(pc)
            raise
        self._parts.listeners_changed(len(self.listeners))
        return answer

    async def remove_listener(self, pc: RTCPeerConnection) -> None:
        track = self.listeners.pop(pc, None)
        if track is None:
            return
        self._metrics.listeners.dec()
        self.hub.unsubscribe(track.queue)
        track.stop()
        await self._close_pc(pc)
        if self._closing is None:
            self._parts.listeners_changed(len(self.listeners))

    def _broadcaster_state(self, pc: RTCPeerConnection) -> None:
        if pc.connectionState in ("failed", "closed"):
            self.request_end(f"broadcaster_{pc.connectionState}")

    def _listener_state(self, pc: RTCPeerConnection) -> None:
        if pc.connectionState in ("failed", "closed") and pc in self.listeners:
            # Not cancelled by close(): an interrupted pc.close() would leave the pc half open.
            self._spawn(self.remove_listener(pc), "remove-listener", cancel_on_close=False)

    def _packet_handed_off(self, arrival: float) -> None:
        self._metrics.server_latency.observe(time.monotonic() - arrival + self.delay_s)

    # -- ending by itself -------------------------------------------------------------------------

    async def _watchdog(self) -> None:
        timing = self._parts.timing
        seen_online = False
        offline_since: float | None = None
        while not self.ended.done():
            await asyncio.sleep(timing.watchdog_s)
            now = time.monotonic()
            last_media = self.media.last_media
            if last_media is None and now - self._created > timing.first_media_s:
                self.request_end("no_media")
            elif last_media is not None and now - last_media > timing.media_gap_s:
                self.request_end("media_stopped")
            online = await self._is_online()
            if online is None:
                continue
            if online:
                seen_online, offline_since = True, None
            elif seen_online:
                offline_since = offline_since or now
                if now - offline_since > timing.offline_grace_s:
                    self.request_end("offline")

    async def _is_online(self) -> bool | None:
        """Presence's answer, or None when it cannot tell right now (a store outage ends no stream)."""
        try:
            async with asyncio.timeout(self._parts.timing.watchdog_s):
                return await self._parts.is_online()
        except PRESENCE_ERRORS as exc:
            log.warning("Session %s: presence check failed: %s", self.session_id, exc)
            return None

    # -- ending ----------------------------------------------------------------------------------

    async def close(self) -> RecordingStats:
        """Release everything (peers, tasks, engine, files); every call returns the same stats."""
        if self._closing is None:
            self.request_end("closed")
            self._closing = detached(self._close(), f"session-{self.session_id[:8]}-close")
        return await asyncio.shield(self._closing)

    async def _close(self) -> RecordingStats:
        await self.media.stop()
        tasks = list(self._tasks)
        for task in tasks:
            if task not in self._uncancellable:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(self.remove_listener(pc) for pc in list(self.listeners)))
        self.hub.close()
        if self.broadcaster is not None:
            await self._close_pc(self.broadcaster)
        self._parts.processor.close()
        return await self._parts.recorder.aclose()

    def _new_pc(self) -> RTCPeerConnection:
        pc = new_peer_connection(self._parts.ice_servers())
        self._parts.open_pcs.add(pc)
        self._metrics.peer_connections.inc()
        return pc

    async def _close_pc(self, pc: RTCPeerConnection) -> None:
        self._parts.open_pcs.discard(pc)
        self._metrics.peer_connections.dec()
        # Shielded: a close interrupted half-way would make every later pc.close() hang.
        await asyncio.shield(pc.close())

    def _spawn(
        self, coro: Coroutine[Any, Any, None], name: str, *, cancel_on_close: bool = True
    ) -> asyncio.Task[None]:
        task = detached(coro, f"session-{self.session_id[:8]}-{name}")
        if not cancel_on_close:
            self._uncancellable.add(task)
        self._tasks.append(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._uncancellable.discard(task)
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "Session %s: task %s failed", self.session_id, task.get_name(), exc_info=task.exception()
            )
            self.request_end("internal_error")
