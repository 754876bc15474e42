"""This process's use of Janus for live streams (with JANUS_URL): relays for the streams it owns,
viewer handles for the listen requests it takes. One per process, owned by `Services`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import redis.asyncio as aioredis
from django.conf import settings

from fc25_denoise.errors import Unavailable
from streams.live.fanout import Hub
from streams.sfu.janus import JanusError
from streams.sfu.listeners import JanusListeners
from streams.sfu.relay import JanusRelay, RelayCallbacks
from streams.sfu.streaming import Streaming

UNAVAILABLE = "The media server for listeners (Janus) does not answer; try going live again in a minute."


class JanusFanout:
    def __init__(self, streaming: Streaming, listeners: JanusListeners, rtp_host: str) -> None:
        self.streaming = streaming
        self.listeners = listeners
        self._rtp_host = rtp_host

    @classmethod
    def from_settings(cls, redis: aioredis.Redis, prefix: str) -> JanusFanout:
        """On the presence store's Redis client and key prefix (presence closes the client)."""
        streaming = Streaming(settings.JANUS_URL, settings.JANUS_API_SECRET, settings.JANUS_ADMIN_KEY)
        return cls(streaming, JanusListeners(streaming, redis, prefix), settings.JANUS_RTP_HOST)

    async def open_relay(
        self,
        hub: Hub,
        description: str,
        on_listeners: Callable[[int], None],
        on_mountpoint: Callable[[int | None], None],
    ) -> JanusRelay:
        """A relay for a stream that is going live; Unavailable (nothing left) if Janus refuses."""
        try:
            return await JanusRelay.open(
                self.streaming, self._rtp_host, hub, description, RelayCallbacks(on_listeners, on_mountpoint)
            )
        except (JanusError, OSError) as exc:
            raise Unavailable(UNAVAILABLE) from exc

    async def destroy(self, mountpoint_id: int) -> None:
        """The mountpoint of a stream whose owner died (its viewers are hung up)."""
        with contextlib.suppress(JanusError):  # Janus restarted since: the mountpoint went with it
            await self.streaming.destroy_mountpoint(mountpoint_id)

    async def aclose(self) -> None:
        await self.listeners.aclose()
        await self.streaming.aclose()
