"""Presence: who is online and live, shared between processes (placeholder, see issue #6)."""

from __future__ import annotations

import datetime as dt


class Presence:
    """Implements `streams.events.StreamEvents`; one per process, owned by `Services`."""

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def stream_started(
        self, user_id: int, *, started_at: dt.datetime, denoise: bool, atten_lim_db: float
    ) -> None:
        return None

    async def stream_ended(self, user_id: int) -> None:
        return None

    async def settings_changed(self, user_id: int, *, denoise: bool, atten_lim_db: float) -> None:
        return None

    async def listeners_changed(self, user_id: int, count: int) -> None:
        return None

    async def is_online(self, user_id: int) -> bool:
        return False
