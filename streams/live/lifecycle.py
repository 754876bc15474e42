"""The states a live session goes through, the moves allowed between them, and why one ends.

    starting ──▶ live ──▶ ending ──▶ ended
        │         ▲  │        ▲
        │         │  ▼        │
        │     reconnecting ───┘     (the broadcaster's connection is gone: it may resume)
        └──────────────────────────────▲     (its resources could not be opened)

`LiveSession._move` is the one place a session's state changes, and it checks `ALLOWED`.
`EndReason` values are the `reason` labels of the `rd_sessions_ended` metric.
"""

from __future__ import annotations

import enum


class SessionState(enum.StrEnum):
    STARTING = "starting"  # the registry is opening its recording, recorder and engine
    LIVE = "live"  # accepting its broadcaster and listeners
    RECONNECTING = "reconnecting"  # its broadcaster's connection dropped: a new offer resumes it
    ENDING = "ending"  # releasing peers, tasks, engine and files
    ENDED = "ended"  # released; the registry finishes the database side and forgets it


ALLOWED: dict[SessionState, frozenset[SessionState]] = {
    SessionState.STARTING: frozenset({SessionState.LIVE, SessionState.ENDED}),
    SessionState.LIVE: frozenset({SessionState.RECONNECTING, SessionState.ENDING}),
    SessionState.RECONNECTING: frozenset({SessionState.LIVE, SessionState.ENDING}),
    SessionState.ENDING: frozenset({SessionState.ENDED}),
    SessionState.ENDED: frozenset(),
}


# States in which a session serves: it takes offers (a resume included), listeners and settings.
SERVING = frozenset({SessionState.LIVE, SessionState.RECONNECTING})


class EndReason(enum.StrEnum):
    STOPPED = "stopped"  # the owner's stop request
    SHUTDOWN = "shutdown"  # the server process is stopping
    CLOSED = "closed"  # closed directly (no other reason was given first)
    NO_MEDIA = "no_media"  # no media within Timing.first_media_s of the start
    MEDIA_STOPPED = "media_stopped"  # media stopped for Timing.media_gap_s
    OFFLINE = "offline"  # the owner's presence gone for Timing.offline_grace_s
    # The broadcaster's track ended, or its peer connection failed or closed, and no new offer
    # resumed the stream within Timing.resume_grace_s:
    BROADCASTER_ENDED = "broadcaster_ended"
    BROADCASTER_FAILED = "broadcaster_failed"
    BROADCASTER_CLOSED = "broadcaster_closed"
    ENGINE_ERROR = "engine_error"  # the denoiser raised
    INTERNAL_ERROR = "internal_error"  # a task of the session failed unexpectedly


class TransitionError(RuntimeError):
    """A move `ALLOWED` does not list: a bug in the caller, never client input."""
