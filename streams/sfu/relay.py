"""One live stream's fan-out through Janus: its mountpoint, fed from the stream's hub as RTP.

The owner process opens a relay when the stream starts (`JanusRelay.open`: nothing is left
behind when Janus refuses) and closes it when the stream ends (the mountpoint is destroyed, so
Janus hangs up every viewer). While it runs, a watcher asks Janus for the viewer count every
`check_s` and reports changes; when Janus stops answering or has lost the mountpoint (it was
restarted) the relay reports itself unavailable, keeps the stream itself untouched (the
broadcaster's recording goes on), and makes a new mountpoint once Janus is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from streams.live.fanout import Hub, ListenerQueue
from streams.live.tasks import detached
from streams.sfu.janus import JanusError
from streams.sfu.rtp import RtpSender, forward
from streams.sfu.streaming import Mountpoint, Streaming

log = logging.getLogger(__name__)

CHECK_S = 1.0


@dataclass(frozen=True)
class RelayCallbacks:
    listeners: Callable[[int], None]  # Janus's viewer count changed
    mountpoint: Callable[[int | None], None]  # where listeners go now (None: nowhere, Janus is gone)


class JanusRelay:
    def __init__(
        self,
        streaming: Streaming,
        rtp_host: str,
        hub: Hub,
        description: str,
        callbacks: RelayCallbacks,
        check_s: float = CHECK_S,
    ) -> None:
        self._streaming = streaming
        self._rtp_host = rtp_host
        self._hub = hub
        self._description = description
        self._callbacks = callbacks
        self._check_s = check_s
        self.mountpoint: Mountpoint | None = None
        self._sender: RtpSender | None = None
        self._queue: ListenerQueue | None = None
        self._forwarder: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.viewers = 0

    @classmethod
    async def open(
        cls,
        streaming: Streaming,
        rtp_host: str,
        hub: Hub,
        description: str,
        callbacks: RelayCallbacks,
        **kwargs: float,
    ) -> JanusRelay:
        """A running relay; JanusError (JanusUnavailable when unreachable) if Janus refuses."""
        relay = cls(streaming, rtp_host, hub, description, callbacks, **kwargs)
        await relay._connect()
        relay._watcher = detached(relay._watch(), f"janus-relay-{description}")
        return relay

    async def _connect(self) -> None:
        mountpoint = await self._streaming.create_mountpoint(self._description)
        try:
            sender = await RtpSender.open(self._rtp_host, mountpoint.rtp_port)
        except OSError:
            await self._streaming.destroy_mountpoint(mountpoint.id)
            raise
        self.mountpoint, self._sender = mountpoint, sender
        self._queue = self._hub.subscribe()
        self._forwarder = detached(forward(self._queue, sender), f"janus-rtp-{mountpoint.id}")

    async def _disconnect(self) -> None:
        if self._forwarder is not None:
            self._forwarder.cancel()
            await asyncio.gather(self._forwarder, return_exceptions=True)
        if self._queue is not None:
            self._hub.unsubscribe(self._queue)
        if self._sender is not None:
            self._sender.close()
        self._forwarder = self._queue = self._sender = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._check_s)
            if self.mountpoint is None:
                await self._reconnect()
                continue
            try:
                count = await self._streaming.viewer_count(self.mountpoint.id)
            except JanusError as exc:
                log.warning("Janus lost the mountpoint of %s: %s", self._description, exc)
                await self._disconnect()
                self.mountpoint = None
                self._set_viewers(0)
                self._callbacks.mountpoint(None)
                continue
            self._set_viewers(count)

    async def _reconnect(self) -> None:
        try:
            await self._connect()
        except (JanusError, OSError) as exc:
            log.info("Janus still unavailable for %s: %s", self._description, exc)
            return
        mountpoint_id = self.mountpoint.id if self.mountpoint else None
        log.info("Janus is back: %s has mountpoint %s", self._description, mountpoint_id)
        self._callbacks.mountpoint(mountpoint_id)

    def _set_viewers(self, count: int) -> None:
        if count != self.viewers:
            self.viewers = count
            self._callbacks.listeners(count)

    async def aclose(self) -> None:
        """Stop sending and destroy the mountpoint (Janus hangs up its viewers)."""
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        await self._disconnect()
        if self.mountpoint is not None:
            with contextlib.suppress(JanusError):
                await self._streaming.destroy_mountpoint(self.mountpoint.id)
            self.mountpoint = None
