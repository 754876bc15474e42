"""The one owner of every live session in this process (placeholder, see issue #5)."""

from __future__ import annotations

from streams.events import StreamEvents


class StreamRegistry:
    def __init__(self, events: StreamEvents) -> None:
        self.events = events

    async def start(self) -> None:
        """Start-up work: recover recordings a crash left unfinished."""
        return None

    async def aclose(self) -> None:
        """Shutdown: end every session, close every peer connection, finalize recordings."""
        return None
