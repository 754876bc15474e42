"""What the registry lets the rest of the system add to a session's life: the scale-out parts
(a Janus relay, the stream's owner record in Redis) plug in here, and none are needed for one
process (`NoHooks`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from streams.live.session import LiveSession


class SessionHooks(Protocol):
    async def opening(self, session: LiveSession) -> None:
        """Before the recording is made; a DomainError refuses the start (nothing is left)."""
        ...

    async def live(self, session: LiveSession) -> None:
        """The session is live (before the start request is answered); never raises."""
        ...

    async def ended(self, session: LiveSession) -> None:
        """The session is closed (or its start failed after `opening`); never raises."""
        ...


class NoHooks:
    async def opening(self, session: LiveSession) -> None:
        return None

    async def live(self, session: LiveSession) -> None:
        return None

    async def ended(self, session: LiveSession) -> None:
        return None
