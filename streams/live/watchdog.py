"""The ways a live session ends by itself, checked once per `Timing.watchdog_s`.

- no media within `first_media_s` of going live (or of resuming), or media stopped for
  `media_gap_s` while the broadcaster is connected;
- a broadcaster's connection gone (reconnecting) and not resumed within `resume_grace_s`:
  the session ends with the reason the connection went;
- the owner's presence gone for `offline_grace_s` after having been seen (a presence store
  outage answers nothing, and so ends nothing).
Media missing for `stall_s` (and back again) is reported through `on_stall`: listeners hear
silence meanwhile, and are told why.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from streams.events import EVENT_ERRORS
from streams.live.lifecycle import EndReason, SessionState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    """When a session ends by itself (seconds); tests shorten them."""

    first_media_s: float = 15.0  # no media this long after start
    media_gap_s: float = 10.0  # media stopped this long
    stall_s: float = 2.0  # media missing this long: listeners are told the source stalled
    offline_grace_s: float = 5.0  # broadcaster's presence gone this long (after being seen)
    watchdog_s: float = 1.0
    listener_connect_s: float = 10.0  # a listener's connection not up this long after its offer
    resume_grace_s: float = 10.0  # a broadcaster's connection gone this long (0: end at once)


@dataclass(frozen=True)
class Interruption:
    reason: EndReason  # what ends the session if it is not resumed
    since: float  # monotonic


class Watched(Protocol):
    """What the watchdog reads of a session."""

    session_id: str
    state: SessionState

    @property
    def ended(self) -> asyncio.Future[EndReason]: ...

    @property
    def last_media(self) -> float | None: ...

    @property
    def media_since(self) -> float:
        """When the session went live or last resumed (monotonic)."""
        ...

    @property
    def interruption(self) -> Interruption | None: ...

    def request_end(self, reason: EndReason) -> None: ...


async def watch(
    session: Watched,
    timing: Timing,
    is_online: Callable[[], Awaitable[bool]],
    on_stall: Callable[[bool], None],
) -> None:
    seen_online = stalled = False
    offline_since: float | None = None
    while not session.ended.done():
        await asyncio.sleep(timing.watchdog_s)
        now = time.monotonic()
        interruption = session.interruption
        if session.state is SessionState.RECONNECTING and interruption is not None:
            if now - interruption.since > timing.resume_grace_s:
                session.request_end(interruption.reason)
        else:
            last_media = session.last_media
            if last_media is None or last_media < session.media_since:
                if now - session.media_since > timing.first_media_s:
                    session.request_end(EndReason.NO_MEDIA)
            elif now - last_media > timing.media_gap_s:
                session.request_end(EndReason.MEDIA_STOPPED)
        last_media = session.last_media
        if last_media is not None and (now - last_media > timing.stall_s) != stalled:
            stalled = not stalled
            on_stall(stalled)
        online = await _online(session, timing, is_online)
        if online is None:
            continue
        if online:
            seen_online, offline_since = True, None
        elif seen_online:
            offline_since = offline_since or now
            if now - offline_since > timing.offline_grace_s:
                session.request_end(EndReason.OFFLINE)


async def _online(session: Watched, timing: Timing, is_online: Callable[[], Awaitable[bool]]) -> bool | None:
    """Presence's answer, or None when it cannot tell right now (a store outage ends no stream)."""
    try:
        async with asyncio.timeout(timing.watchdog_s):
            return await is_online()
    except EVENT_ERRORS as exc:
        log.warning("Session %s: presence check failed: %s", session.session_id, exc)
        return None
