"""What the live path tells the rest of the system about a stream.

`StreamRegistry` and its sessions call these after the database change they describe has
committed; `streams.presence.service.Presence` implements them (fan-out to friends,
cross-process state). The receiver's store may be down: `EVENT_ERRORS` are what a call may
then raise, and `tell` is how the live path reports without being undone or blocked by that.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable
from typing import Protocol

from redis.exceptions import RedisError

from fc25_denoise.errors import DomainError

log = logging.getLogger(__name__)

# What an implementation may raise when its store is unreachable: such a call ends no stream.
EVENT_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError, RedisError)


class StreamEvents(Protocol):
    async def claim_stream(self, user_id: int) -> bool:
        """Before a start: True if this process may start the user's stream, False if a live
        process holds it; raises `fc25_denoise.errors.Unavailable` when that cannot be known."""
        ...

    async def release_claim(self, user_id: int) -> None:
        """A start that failed after `claim_stream`."""
        ...

    async def stream_started(
        self, user_id: int, *, started_at: dt.datetime, denoise: bool, atten_lim_db: float
    ) -> None: ...

    async def stream_ended(self, user_id: int) -> None: ...

    async def settings_changed(self, user_id: int, *, denoise: bool, atten_lim_db: float) -> None: ...

    async def listeners_changed(self, user_id: int, count: int) -> None: ...

    async def source_stalled(self, user_id: int, stalled: bool) -> None:
        """The broadcaster's audio stopped coming (True) or came back (False)."""
        ...

    async def recording_stopped(self, user_id: int, reason: str) -> None:
        """The stream goes on but its recording stopped (`reason`: "storage_full", "failed")."""
        ...

    async def is_online(self, user_id: int) -> bool:
        """True while the user has at least one open presence socket on any process."""
        ...


async def tell(call: Awaitable[None]) -> None:
    """Await one event call; a failure is logged, never raised into the live path."""
    try:
        await call
    except (*EVENT_ERRORS, DomainError) as exc:
        log.warning("A stream event was not delivered: %s", exc)
