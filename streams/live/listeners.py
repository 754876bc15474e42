"""The listeners a session serves itself (no Janus): one server peer connection each, fed by the hub.

The server offers (as Janus's Streaming plugin does, so the page has one listener flow): `offer`
makes the peer connection with its listener track and returns the offer with a listener id;
`answer` takes the browser's answer. No one user can hold the slots, and none is held by a
connection that never comes up (`ListenerLimits`): a connection not connected within
`connect_within_s` of its offer is closed, as is every connection that fails or closes; a user
has at most `per_user` connections to one stream, a new offer replacing their oldest. `cut`
closes one user's connections (a friendship ended), `close_all` every one (the session ends).
Only connected listeners are counted; the slot limit counts them all.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCPeerConnection

from fc25_denoise.errors import NotFound, Unavailable
from streams.live.fanout import Hub
from streams.live.tasks import TaskSet
from streams.live.tracks import ListenerTrack
from streams.live.webrtc import accept_answer, offer_listener

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ListenerLimits:
    max_listeners: int  # connections per stream, connected or not
    per_user: int = 3  # connections per user per stream
    connect_within_s: float = 10.0  # from the offer to "connected"


@dataclass
class _Listener:
    user_id: int
    pc: RTCPeerConnection
    track: ListenerTrack


@dataclass(frozen=True)
class ListenerPeers:
    """How a session makes and closes its server peer connections, and tells of counts."""

    new_pc: Callable[[], RTCPeerConnection]
    close_pc: Callable[[RTCPeerConnection], Awaitable[None]]
    new_track: Callable[[Hub], ListenerTrack]
    changed: Callable[[int], None]  # the number of listeners changed (offers not counted)
    gauge: Any  # the process's listener peer-connection gauge (inc/dec)


class HubListeners:
    def __init__(self, hub: Hub, peers: ListenerPeers, tasks: TaskSet, limits: ListenerLimits) -> None:
        self._hub = hub
        self._peers = peers
        self._tasks = tasks
        self._limits = limits
        self._all: dict[str, _Listener] = {}
        self._connected: set[str] = set()
        self.closed = False

    @property
    def count(self) -> int:
        return len(self._connected)

    def tracks(self) -> list[ListenerTrack]:
        """Every listener's track, oldest first (what tests and the metrics look at)."""
        return [listener.track for listener in self._all.values()]

    def listening(self) -> list[int]:
        return sorted(self._all[lid].user_id for lid in self._connected)

    async def offer(self, user_id: int) -> tuple[str, str]:
        """A new listener's peer connection: (listener id, the server's SDP offer)."""
        if self.closed:
            raise Unavailable("This stream is ending.")
        mine = [lid for lid, listener in self._all.items() if listener.user_id == user_id]
        replaced = mine[: max(0, len(mine) - self._limits.per_user + 1)]  # the user's oldest
        if len(self._all) - len(replaced) >= self._limits.max_listeners:
            raise Unavailable(
                f"This stream already has {self._limits.max_listeners} listeners; try again later."
            )
        await asyncio.gather(*(self.remove(lid) for lid in replaced))
        listener_id = secrets.token_urlsafe(16)
        track = self._peers.new_track(self._hub)
        pc = self._peers.new_pc()
        self._all[listener_id] = _Listener(user_id, pc, track)
        self._peers.gauge.inc()
        pc.on("connectionstatechange", lambda: self._state(listener_id, pc))
        try:
            offer = await offer_listener(pc, track)
        except BaseException:  # any failure, cancellation included: undo, then re-raise
            await self.remove(listener_id)
            raise
        self._tasks.spawn(self._expire(listener_id, pc), "listener-deadline")
        return listener_id, offer.sdp

    def _mine(self, listener_id: str, user_id: int) -> _Listener:
        listener = self._all.get(listener_id)
        if listener is None or listener.user_id != user_id:
            raise NotFound("No such listener (it may have ended); start listening again.")
        return listener

    async def answer(self, listener_id: str, user_id: int, sdp: str) -> None:
        listener = self._mine(listener_id, user_id)
        await accept_answer(listener.pc, sdp)

    async def leave(self, listener_id: str, user_id: int) -> None:
        self._mine(listener_id, user_id)
        await self.remove(listener_id)

    async def cut(self, user_id: int) -> int:
        ids = [lid for lid, listener in self._all.items() if listener.user_id == user_id]
        await asyncio.gather(*(self.remove(lid) for lid in ids))
        return len(ids)

    async def remove(self, listener_id: str) -> None:
        listener = self._all.pop(listener_id, None)
        if listener is None:
            return
        was_counted = listener_id in self._connected
        self._connected.discard(listener_id)
        self._peers.gauge.dec()
        self._hub.unsubscribe(listener.track.queue)
        listener.track.stop()
        await self._peers.close_pc(listener.pc)
        if was_counted and not self.closed:
            self._peers.changed(self.count)

    async def close_all(self) -> None:
        self.closed = True
        await asyncio.gather(*(self.remove(lid) for lid in list(self._all)))

    def _state(self, listener_id: str, pc: RTCPeerConnection) -> None:
        listener = self._all.get(listener_id)
        if listener is None or listener.pc is not pc:
            return
        if pc.connectionState == "connected" and listener_id not in self._connected:
            self._connected.add(listener_id)
            self._peers.changed(self.count)
        elif pc.connectionState in ("failed", "closed"):
            # Not cancelled by close_all(): an interrupted pc.close() would leave the pc half open.
            self._tasks.spawn(self.remove(listener_id), "remove-listener", cancel=False)

    async def _expire(self, listener_id: str, pc: RTCPeerConnection) -> None:
        await asyncio.sleep(self._limits.connect_within_s)
        listener = self._all.get(listener_id)
        if listener is not None and listener.pc is pc and listener_id not in self._connected:
            log.info("A listener did not connect within %g s; closing it.", self._limits.connect_within_s)
            await self.remove(listener_id)
