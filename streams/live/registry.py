"""The one owner of every live session in this process: the only place that starts or ends one.

A user's session is in `_sessions` from the moment its start is accepted (state starting)
until it has ended and the database knows; its state says which step it is at. Each live
session gets a supervisor task that waits for the session's own end signal (peer failed, no
media, presence gone, ...) and ends it here, like the stop endpoint and shutdown do. Ending
always runs the same steps once: release the session's resources, then give the stream back
durably (`streams.live.ownership`: recording finalized and `is_streaming` cleared in one
transaction, then `events` told; retried while the database is down), then forget the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from aiortc import RTCPeerConnection, RTCSessionDescription
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import DatabaseError

from denoise.pool import ProcessorPool
from denoise.stream import Controls
from fc25_denoise.errors import BadRequest, Conflict, Forbidden, NotFound, Unavailable
from fc25_denoise.ice import ice_servers_for
from streams.events import StreamEvents, tell
from streams.live import state as live_state
from streams.live.hooks import NoHooks, SessionHooks
from streams.live.lifecycle import EndReason, SessionState
from streams.live.metrics import Metrics
from streams.live.opus import silence_packet
from streams.live.ownership import Ownership
from streams.live.session import LiveSession, SessionResources, SessionShared, Timing
from streams.live.tasks import TaskSet
from streams.live.webrtc import Offer, ice_servers
from streams.recordings import service as recordings
from streams.recordings.wav_file import RecordingStats
from users.models import User

log = logging.getLogger(__name__)

MODEL_LOAD_WAIT_S = 10.0


class StreamRegistry:
    def __init__(
        self,
        events: StreamEvents,
        *,
        pool: ProcessorPool | None = None,
        timing: Timing | None = None,
        hooks: SessionHooks | None = None,
    ):
        self.events = events
        self.hooks: SessionHooks = hooks or NoHooks()
        self.metrics = Metrics()
        self._pool = pool or ProcessorPool()
        self._timing = timing or Timing(
            offline_grace_s=settings.STREAM_OFFLINE_GRACE_S,
            listener_connect_s=settings.LISTENER_CONNECT_TIMEOUT_S,
            resume_grace_s=settings.STREAM_RESUME_GRACE_S,
        )
        self._sessions: dict[int, LiveSession] = {}  # by owner, from starting until forgotten
        self._by_id: dict[str, LiveSession] = {}  # live ones, by session id
        self._supervisors: dict[LiveSession, asyncio.Task[None]] = {}  # each one's whole end
        self._tasks = TaskSet("stream-registry")
        self._open_pcs: set[RTCPeerConnection] = set()  # every session's, added and removed there
        self._silence: bytes | None = None
        self._closed = False
        self._ownership = Ownership(events)  # the claim at a start, the durable end

    # -- lifetime ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start-up work: finish recordings a crash left open; reset stale live flags."""
        # With Redis, another process may be writing a live user's recording right now; those
        # left by a dead process are finished by presence when it reaps that process.
        recovered = await database_sync_to_async(recordings.recover_unfinished)(
            skip_live_owners=bool(settings.REDIS_URL)
        )
        if recovered:
            log.info("Recovered %d unfinished recording(s).", len(recovered))
        if not settings.REDIS_URL:  # single process: no session can be live elsewhere
            stale = await database_sync_to_async(live_state.reset_streaming_flags)()
            if stale:
                log.info("Cleared the live flag of %d user(s) left by a crash.", stale)

    async def aclose(self) -> None:
        """Shutdown: end every session, close every peer connection, finalize recordings."""
        self._closed = True
        for session in list(self._sessions.values()):
            session.request_end(EndReason.SHUTDOWN)  # a starting one ends as soon as it is live
        await asyncio.gather(
            *(self._supervisors[s] for s in list(self._sessions.values()) if s in self._supervisors)
        )
        await self._tasks.join()
        await self._ownership.aclose()
        await self._pool.aclose()

    # -- read-outs -------------------------------------------------------------------------------

    @property
    def sessions(self) -> dict[int, LiveSession]:
        return dict(self._sessions)

    def session_for(self, user_id: int) -> LiveSession | None:
        return self._sessions.get(user_id)

    def _live(self, user_id: int) -> LiveSession | None:
        session = self._sessions.get(user_id)
        return session if session is not None and session.serving else None

    def open_peer_connections(self) -> int:
        """Server-side peer connections not yet closed, ended sessions' included."""
        return len(self._open_pcs)

    async def status(self, viewer: User, username: str) -> live_state.StreamStatus:
        owner = await database_sync_to_async(live_state.visible_owner)(viewer, username)
        session = self._sessions.get(owner.pk)
        if session is not None and session.state is not SessionState.STARTING:
            mine = owner.pk == viewer.pk
            names = None
            if mine:
                names = await database_sync_to_async(live_state.usernames)(session.listeners.listening())
            return live_state.StreamStatus(
                True,
                session.started_at,
                session.denoise,
                session.atten_lim_db,
                session.listener_count,
                state=str(session.state),
                resumable=mine and session.serving,
                session_id=session.session_id if mine and session.serving else None,
                listener_names=names,
            )
        if not owner.is_streaming:
            return live_state.StreamStatus(False, None, None, None, 0)
        live = await database_sync_to_async(live_state.open_recording)(owner.pk)
        return live_state.StreamStatus(
            True, live.started_at if live else None, live and live.denoise, live and live.atten_lim_db, None
        )

    # -- starting and ending -------------------------------------------------------------------

    async def start_stream(
        self, user: User, *, denoise: object = None, atten_lim_db: object = None
    ) -> LiveSession:
        controls = live_state.parse_controls(denoise, atten_lim_db).applied_to(Controls())
        if self._closed:
            raise Unavailable("The server is shutting down.")
        if user.pk in self._sessions:
            raise Conflict("You are already live.")
        session = LiveSession(user_id=user.pk, session_id=uuid.uuid4().hex, shared=self._shared())
        self._sessions[user.pk] = session
        try:
            resources = await self._open_resources(user, controls, session)
        except BaseException:  # any failure, cancellation included: undo, then re-raise
            session.abandon()
            del self._sessions[user.pk]
            raise
        session.go_live(resources)
        self._by_id[session.session_id] = session
        self._count_live()
        self._supervisors[session] = self._tasks.spawn(self._supervise(session), "supervise")
        await self.hooks.live(session)
        await tell(
            self.events.stream_started(
                user.pk,
                started_at=session.started_at,
                denoise=session.denoise,
                atten_lim_db=session.atten_lim_db,
            )
        )
        return session

    def _shared(self) -> SessionShared:
        if self._silence is None:
            self._silence = silence_packet()
        return SessionShared(
            metrics=self.metrics,
            silence=self._silence,
            ice_servers=lambda: ice_servers(ice_servers_for(None)),
            events=self.events,
            max_listeners=settings.MAX_LISTENERS_PER_STREAM,
            listeners_per_user=settings.LISTENER_CONNECTIONS_PER_USER,
            timing=self._timing,
            open_pcs=self._open_pcs,
        )

    async def _open_resources(self, user: User, controls: Controls, session: LiveSession) -> SessionResources:
        await self._ownership.claim(user.pk)  # Conflict if live on another process
        recording = recorder = processor = None
        opened = False
        loop = asyncio.get_running_loop()

        def recording_stopped(reason: str) -> None:  # from the recorder's writer thread
            loop.call_soon_threadsafe(
                self._tasks.spawn, tell(self.events.recording_stopped(user.pk, reason)), "recording-stopped"
            )

        try:
            await self.hooks.opening(session)  # first: a refusal there leaves no recording behind
            opened = True
            recording = await database_sync_to_async(recordings.create_recording)(
                user,
                denoise=controls.enabled,
                atten_lim_db=controls.atten_lim_db,
                record_raw=settings.RECORD_RAW,
            )
            recorder = await asyncio.to_thread(recordings.open_recorder, recording, recording_stopped)
            processor = self._pool.open(controls=controls)
            with contextlib.suppress(TimeoutError):  # a slow or failed load surfaces at process()
                async with asyncio.timeout(MODEL_LOAD_WAIT_S):
                    await processor.ready()
        except BaseException:  # any failure, cancellation included: undo, then re-raise
            # A refused start leaves nothing behind: no row, no file, no flag, no claim.
            if processor is not None:
                processor.close()
            if recorder is not None:
                await recorder.aclose()
            if recording is not None:
                await self._discard(recording.pk)
            if opened:
                await self.hooks.ended(session)
            await self._ownership.release(user.pk)
            raise
        return SessionResources(
            recording_id=recording.pk, started_at=recording.started_at, processor=processor, recorder=recorder
        )

    def _count_live(self) -> None:
        self.metrics.live_streams.set(len(self._by_id))

    async def stop_stream(self, user: User) -> bool:
        """End the user's stream; False when there was none (stopping is idempotent)."""
        session = self._sessions.get(user.pk)
        if session is None:
            await self._refuse_if_live_elsewhere(user, "stop")
            return False
        await self.end_session(session, EndReason.STOPPED)
        return True

    async def _refuse_if_live_elsewhere(self, user: User, verb: str) -> None:
        """Conflict when the user's live session is held by another server process."""
        if user.pk in self._sessions:
            return
        if await database_sync_to_async(live_state.is_streaming)(user.pk):
            raise Conflict(
                f"Your stream runs on another server process; {verb} it from the page that started it."
            )

    async def end_session(self, session: LiveSession, reason: EndReason) -> None:
        """End `session` once, whoever asks and however often; returns when it is all done."""
        session.request_end(reason)  # the first reason given is the one recorded
        supervisor = self._supervisors.get(session)
        if supervisor is not None:  # else still starting: it ends as soon as it is live
            await asyncio.shield(supervisor)

    async def _supervise(self, session: LiveSession) -> None:
        """A live session's whole end: waits for its end signal, then ends it."""
        reason = await session.ended
        log.info("Ending the stream of user %s (%s).", session.user_id, reason)
        self.metrics.sessions_ended.labels(reason).inc()
        stats: RecordingStats | None = None
        try:
            stats = await session.close()
        finally:
            await self.hooks.ended(session)  # its relay and owner record go, whatever happened
            # Durable: written now, or retried until the database takes it; told once written.
            await self._ownership.give_back(session.user_id, session.recording_id, stats)
            if self._sessions.get(session.user_id) is session:
                del self._sessions[session.user_id]
            self._by_id.pop(session.session_id, None)
            self._supervisors.pop(session, None)
            self._count_live()

    async def _discard(self, recording_id: int) -> None:
        try:
            await database_sync_to_async(recordings.discard_recording)(recording_id)
        except DatabaseError:  # left unfinished: the reconciler finishes it from its file
            log.exception("Could not remove recording %s of a refused start.", recording_id)

    # -- media and controls ----------------------------------------------------------------------

    def broadcast_session(self, user: User, session_id: object) -> LiveSession:
        """The user's own live session with that id (the API checks it before reading the SDP)."""
        if not isinstance(session_id, str) or not session_id:
            raise BadRequest('"session_id" must be the id returned by /api/stream/start/.')
        session = self._by_id.get(session_id)
        if session is None or not session.serving:
            raise NotFound("No live session with that id (it may have ended).")
        if session.user_id != user.pk:
            raise Forbidden("That session belongs to someone else.")
        return session

    async def accept_offer(self, user: User, session_id: object, offer: Offer) -> RTCSessionDescription:
        return await self.broadcast_session(user, session_id).accept_broadcast(offer)

    async def own_session(self, user: User, verb: str = "change") -> LiveSession:
        """The user's live session on this process; NotFound (or Conflict if elsewhere) otherwise."""
        session = self._live(user.pk)
        if session is None:
            await self._refuse_if_live_elsewhere(user, verb)
            raise NotFound("You are not live.")
        return session

    async def update_settings(self, user: User, *, denoise: object, atten_lim_db: object) -> LiveSession:
        change = live_state.parse_controls(denoise, atten_lim_db)
        if change.empty:
            raise BadRequest('Give "denoise" and/or "atten_lim_db".')
        session = await self.own_session(user)
        session.apply_settings(controls=change.applied_to(session.controls))
        await tell(
            self.events.settings_changed(user.pk, denoise=session.denoise, atten_lim_db=session.atten_lim_db)
        )
        return session
