"""The listeners a session serves itself: one server peer connection each, fed by the hub.

Who may listen is checked for as long as they listen, and no one user can hold the slots:
- a connection not connected within `connect_within_s` of its offer is closed (slot freed);
- a user has at most `per_user` connections to one stream: a new one replaces their oldest;
- `cut(user_id)` closes one user's connections at once (their friendship ended);
- every connection that fails or closes goes, and `close_all` closes the rest (the session ends).
Only connected listeners are counted (`count`, `listening()`); the slot limit counts them all.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription

from fc25_denoise.errors import Unavailable
from streams.live.fanout import Hub
from streams.live.tasks import TaskSet
from streams.live.tracks import ListenerTrack
from streams.live.webrtc import Offer, answer_listener

log = logging.getLogger(__name__)


@dataclass
class _Listener:
    user_id: int
    pc: RTCPeerConnection
    track: ListenerTrack
    deadline: asyncio.TimerHandle | None = None
    connected: bool = False


@dataclass(frozen=True)
class ListenerPeers:
    """How a session makes and closes its server peer connections, and tells of counts."""

    new_pc: Callable[[], RTCPeerConnection]
    close_pc: Callable[[RTCPeerConnection], Awaitable[None]]
    new_track: Callable[[Hub], ListenerTrack]
    changed: Callable[[int], None]  # the number of connected listeners changed
    gauge: Any  # the process's listener peer-connection gauge (inc/dec)


@dataclass(frozen=True)
class ListenerLimits:
    max_listeners: int  # connections per stream, connected or not
    per_user: int  # connections per user per stream
    connect_within_s: float  # from the offer to "connected"


class HubListeners:
    def __init__(self, hub: Hub, peers: ListenerPeers, tasks: TaskSet, limits: ListenerLimits) -> None:
        self._hub = hub
        self._peers = peers
        self._tasks = tasks
        self._limits = limits
        self._all: dict[int, _Listener] = {}  # by listener number, oldest first
        self._numbers = itertools.count()
        self.closed = False

    @property
    def count(self) -> int:
        return sum(1 for listener in self._all.values() if listener.connected)

    def listening(self) -> list[int]:
        """Who listens now: a user id per connected listener, sorted."""
        return sorted(listener.user_id for listener in self._all.values() if listener.connected)

    def tracks(self) -> list[ListenerTrack]:
        """Every listener's track, oldest first (tests and diagnostics)."""
        return [listener.track for listener in self._all.values()]

    async def add(self, offer: Offer, user_id: int) -> RTCSessionDescription:
        """A new listener's peer connection for `offer`: the server's answer."""
        if self.closed:
            raise Unavailable("This stream is ending.")
        mine = [n for n, listener in self._all.items() if listener.user_id == user_id]
        replaced = mine[: max(0, len(mine) - self._limits.per_user + 1)]
        if len(self._all) - len(replaced) >= self._limits.max_listeners:
            raise Unavailable(
                f"This stream already has {self._limits.max_listeners} listeners; try again later."
            )
        number = next(self._numbers)
        track = self._peers.new_track(self._hub)
        pc = self._peers.new_pc()
        listener = _Listener(user_id, pc, track)
        self._all[number] = listener
        self._peers.gauge.inc()
        pc.on("connectionstatechange", lambda: self._state(number, pc))
        try:
            answer = await answer_listener(pc, offer, track)
        except BaseException:
            await self.remove(number)
            raise
        # The user's oldest connections make room only once the new one has its answer.
        await asyncio.gather(*(self.remove(n) for n in replaced))
        listener.deadline = asyncio.get_running_loop().call_later(
            self._limits.connect_within_s, self._connect_deadline, number, pc
        )
        return answer

    async def cut(self, user_id: int) -> int:
        """Close every connection of `user_id`; how many there were."""
        numbers = [n for n, listener in self._all.items() if listener.user_id == user_id]
        await asyncio.gather(*(self.remove(n) for n in numbers))
        return len(numbers)

    async def remove(self, number: int) -> None:
        listener = self._all.pop(number, None)
        if listener is None:
            return
        if listener.deadline is not None:
            listener.deadline.cancel()
        self._peers.gauge.dec()
        self._hub.unsubscribe(listener.track.queue)
        listener.track.stop()
        await self._peers.close_pc(listener.pc)
        if listener.connected and not self.closed:
            self._peers.changed(self.count)

    async def close_all(self) -> None:
        self.closed = True
        await asyncio.gather(*(self.remove(n) for n in list(self._all)))

    def _state(self, number: int, pc: RTCPeerConnection) -> None:
        listener = self._all.get(number)
        if listener is None or listener.pc is not pc:
            return
        if pc.connectionState == "connected" and not listener.connected:
            listener.connected = True
            if listener.deadline is not None:
                listener.deadline.cancel()
            self._peers.changed(self.count)
        elif pc.connectionState in ("failed", "closed"):
            self._spawn_removal(number)

    def _connect_deadline(self, number: int, pc: RTCPeerConnection) -> None:
        listener = self._all.get(number)
        if listener is not None and listener.pc is pc and not listener.connected:
            log.info("A listener did not connect within %.0f s; closing it.", self._limits.connect_within_s)
            self._spawn_removal(number)

    def _spawn_removal(self, number: int) -> None:
        # Not cancelled by close_all(): an interrupted pc.close() would leave the pc half open.
        self._tasks.spawn(self.remove(number), "remove-listener", cancel=False)
