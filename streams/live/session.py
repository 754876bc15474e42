"""One live session: the broadcaster's peer connection, its audio pipeline and its listeners.

The registry creates a session (starting), opens its recording, recorder and engine and hands
them over (`go_live`), and later closes it (ending, then ended); `_move` is the only place the
state changes (see `streams.live.lifecycle`). The media path itself is
`streams.live.pipeline.AudioPipeline`; the fan-out `streams.live.fanout.Hub`. A watchdog
notices the ways a session ends by itself (no media, presence gone) and, like the peers' state
changes, reports the reason on `ended`; the `StreamRegistry` then calls `close()`, which
releases everything whatever the reason, and is idempotent. Listener counts go straight to the
registry's `StreamEvents`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiortc import RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from denoise.pool import AudioProcessor
from denoise.stream import Controls
from fc25_denoise.errors import Unavailable
from streams.events import StreamEvents, tell
from streams.live.fanout import Hub
from streams.live.lifecycle import ALLOWED, SERVING, EndReason, SessionState, TransitionError
from streams.live.listeners import HubListeners, ListenerLimits, ListenerPeers
from streams.live.metrics import Metrics
from streams.live.pipeline import AudioPipeline
from streams.live.tasks import TaskSet, detached
from streams.live.tracks import ListenerTrack
from streams.live.watchdog import Interruption, Timing, watch
from streams.live.webrtc import Offer, answer_broadcaster, new_peer_connection
from streams.recordings.recorder import Recorder
from streams.recordings.wav_file import RecordingStats

log = logging.getLogger(__name__)


class Relay(Protocol):
    """A fan-out outside this process (streams.sfu.relay.JanusRelay): the viewers it counts."""

    viewers: int


@dataclass(frozen=True)
class SessionShared:
    """What every session of one registry shares."""

    metrics: Metrics
    silence: bytes
    ice_servers: Callable[[], list[RTCIceServer]]  # per connection: TURN credentials expire
    events: StreamEvents
    max_listeners: int
    listeners_per_user: int
    timing: Timing
    open_pcs: set[RTCPeerConnection] = field(default_factory=set)  # the registry's, until closed


@dataclass(frozen=True)
class SessionResources:
    """What the registry opens for one session while it is starting."""

    recording_id: int
    started_at: dt.datetime
    processor: AudioProcessor  # holds the live controls (one `Controls` value)
    recorder: Recorder


class LiveSession:
    def __init__(self, *, user_id: int, session_id: str, shared: SessionShared) -> None:
        self.user_id = user_id
        self.session_id = session_id
        self.state = SessionState.STARTING
        self._shared = shared
        self._metrics = shared.metrics
        self._resources: SessionResources | None = None
        self._media: AudioPipeline | None = None
        self._handed_off: Callable[[float], None] | None = None
        self.hub = Hub(on_drop=shared.metrics.listener_packets_dropped.inc)
        self.broadcaster: RTCPeerConnection | None = None
        self.relay: Relay | None = None  # the stream's fan-out through Janus, if any
        self._tasks = TaskSet(
            f"session-{session_id[:8]}", on_failure=lambda _exc: self.request_end(EndReason.INTERNAL_ERROR)
        )
        peers = ListenerPeers(
            self._new_pc, self._close_pc, self._new_track, self._listeners_changed, shared.metrics.listeners
        )
        limits = ListenerLimits(
            shared.max_listeners, shared.listeners_per_user, shared.timing.listener_connect_s
        )
        self.listeners = HubListeners(self.hub, peers, self._tasks, limits)
        self.ended: asyncio.Future[EndReason] = asyncio.get_running_loop().create_future()
        self._closing: asyncio.Task[RecordingStats] | None = None
        self.media_since = 0.0  # when it went live or last resumed (monotonic)
        self.interruption: Interruption | None = None  # while reconnecting
        self.resumed = 0  # how often its broadcaster came back

    def _move(self, to: SessionState) -> None:
        """The one place the state changes."""
        if to not in ALLOWED[self.state]:
            raise TransitionError(f"session {self.session_id}: {self.state} -> {to} is not allowed")
        log.debug("Session %s: %s -> %s", self.session_id, self.state, to)
        self.state = to

    def go_live(self, resources: SessionResources) -> None:
        """Take the opened resources and start serving: starting -> live."""
        self._move(SessionState.LIVE)
        self._resources = resources
        self._media = AudioPipeline(
            processor=resources.processor,
            recorder=resources.recorder,
            hub=self.hub,
            metrics=self._metrics,
            on_end=self._media_ended,
        )
        # The engine's delay is constant: read once here, not for every listener packet.
        self._handed_off = self._metrics.hand_off_observer(resources.processor.delay_s)
        self.media_since = time.monotonic()
        self._tasks.spawn(
            watch(
                self, self._shared.timing, lambda: self._shared.events.is_online(self.user_id), self._stalled
            ),
            "watchdog",
        )

    def abandon(self) -> None:
        """Its resources could not be opened (the registry released what was): starting -> ended."""
        self._move(SessionState.ENDED)
        self.request_end(EndReason.CLOSED)

    # -- state read by the API ----------------------------------------------------------------

    @property
    def resources(self) -> SessionResources:
        if self._resources is None:
            raise TransitionError(f"session {self.session_id} has not gone live")
        return self._resources

    @property
    def media(self) -> AudioPipeline:
        if self._media is None:
            raise TransitionError(f"session {self.session_id} has not gone live")
        return self._media

    @property
    def serving(self) -> bool:
        """Live or reconnecting: it takes offers (a resume included), listeners and settings."""
        return self.state in SERVING

    @property
    def last_media(self) -> float | None:
        return self.media.last_media

    @property
    def recording_id(self) -> int:
        return self.resources.recording_id

    @property
    def started_at(self) -> dt.datetime:
        return self.resources.started_at

    @property
    def controls(self) -> Controls:
        return self.resources.processor.controls

    @property
    def denoise(self) -> bool:
        return self.controls.enabled

    @property
    def atten_lim_db(self) -> float:
        return self.controls.atten_lim_db

    @property
    def listener_count(self) -> int:
        """Connected listeners: this process's own, or Janus's viewers when it relays the stream."""
        return self.relay.viewers if self.relay is not None else self.listeners.count

    def apply_settings(self, *, controls: Controls) -> None:
        """Live controls of the engine (checked by the caller): effective from the next frame."""
        self.resources.processor.controls = controls

    def request_end(self, reason: EndReason) -> None:
        if not self.ended.done():
            self.ended.set_result(reason)

    # -- peers -----------------------------------------------------------------------------------

    async def accept_broadcast(self, offer: Offer) -> RTCSessionDescription:
        """The broadcaster's connection: the first one, a resume after a drop (reconnecting), or
        a newer page of the same user taking over (the older connection is closed). A refused
        offer changes nothing."""
        if not self.serving:
            raise Unavailable("This session is ending.")
        previous = self.broadcaster
        pc = self._new_pc()
        self.broadcaster = pc  # from here on the previous connection's events are ignored
        pc.on("connectionstatechange", lambda: self._broadcaster_state(pc))
        try:
            answer, track = await answer_broadcaster(pc, offer)
        except BaseException:  # any failure, cancellation included: undo, then re-raise
            self.broadcaster = previous
            await self._close_pc(pc)
            raise
        if previous is not None:
            self._tasks.spawn(self._close_pc(previous), "close-broadcaster", cancel=False)
        if self.state is SessionState.RECONNECTING:
            self._move(SessionState.LIVE)
            self.interruption = None
            self.resumed += 1
            self._metrics.sessions_resumed.inc()
            log.info("Session %s resumed: its broadcaster is back.", self.session_id)
        if self.serving:
            self.media_since = time.monotonic()
            self.attach(track)
        return answer

    def attach(self, track: MediaStreamTrack) -> None:
        """Start reading and processing the broadcaster's audio track (instead of an older one)."""
        self.media.attach(track)

    def _new_track(self, hub: Hub) -> ListenerTrack:
        return ListenerTrack(
            hub.subscribe(),
            self._shared.silence,
            on_packet=self._handed_off,
            on_silence=self._metrics.silence_packets.inc,
        )

    def _listeners_changed(self, count: int) -> None:
        self._tasks.spawn(tell(self._shared.events.listeners_changed(self.user_id, count)), "listeners")

    def _broadcaster_state(self, pc: RTCPeerConnection) -> None:
        if pc is not self.broadcaster:  # refused at its offer, or replaced by a newer one
            return
        if pc.connectionState == "failed":
            self._interrupted(EndReason.BROADCASTER_FAILED)
        elif pc.connectionState == "closed":
            self._interrupted(EndReason.BROADCASTER_CLOSED)

    def _stalled(self, stalled: bool) -> None:
        """The broadcaster's audio stopped coming, or came back: listeners hear silence meanwhile."""
        events = self._shared.events
        self._tasks.spawn(tell(events.source_stalled(self.user_id, stalled)), "stalled")

    def _media_ended(self, reason: EndReason) -> None:
        if reason is EndReason.BROADCASTER_ENDED:
            self._interrupted(reason)
        else:
            self.request_end(reason)

    def _interrupted(self, reason: EndReason) -> None:
        """The broadcaster's connection is gone: wait for it to resume (or end at once)."""
        if self.state is not SessionState.LIVE:
            return  # already reconnecting, or ending
        if self._shared.timing.resume_grace_s <= 0:
            self.request_end(reason)
            return
        self._move(SessionState.RECONNECTING)
        self.interruption = Interruption(reason, time.monotonic())
        log.info("Session %s: broadcaster gone (%s); it may resume.", self.session_id, reason)
        gone, self.broadcaster = self.broadcaster, None
        if gone is not None:
            self._tasks.spawn(self._close_pc(gone), "close-broadcaster", cancel=False)

    # -- ending ----------------------------------------------------------------------------------

    async def close(self) -> RecordingStats:
        """Release everything (peers, tasks, engine, files); every call returns the same stats."""
        if self._closing is None:
            self.interruption = None
            self.request_end(EndReason.CLOSED)
            self._move(SessionState.ENDING)
            self._closing = detached(self._close(), f"session-{self.session_id[:8]}-close")
        return await asyncio.shield(self._closing)

    async def _close(self) -> RecordingStats:
        resources = self.resources
        try:
            await self.media.stop()
            await self._tasks.cancel_all()
            await self.listeners.close_all()
            self.hub.close()
            if self.broadcaster is not None:
                await self._close_pc(self.broadcaster)
            resources.processor.close()
            return await resources.recorder.aclose()
        finally:
            self._move(SessionState.ENDED)

    def _new_pc(self) -> RTCPeerConnection:
        pc = new_peer_connection(self._shared.ice_servers())
        self._shared.open_pcs.add(pc)
        self._metrics.peer_connections.inc()
        return pc

    async def _close_pc(self, pc: RTCPeerConnection) -> None:
        self._shared.open_pcs.discard(pc)
        self._metrics.peer_connections.dec()
        # Shielded: a close interrupted half-way would make every later pc.close() hang.
        await asyncio.shield(pc.close())
