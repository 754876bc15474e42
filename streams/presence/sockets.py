"""This process's open WebSockets: where bus events are handed over, and who is told of a restart.

Presence sockets are kept by user, so an event from `streams.presence.bus` addressed to users
reaches their sockets here without a channel-layer round trip; every socket (stream pages
too) is told when the server shuts down.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any, Protocol


class Socket(Protocol):
    async def deliver(self, message: dict[str, Any]) -> None: ...  # a bus event for its user
    async def restarting(self) -> None: ...  # the server shuts down: tell the client, close
    async def resync(self) -> None: ...  # events may have been missed: send a fresh snapshot


class LocalSockets:
    def __init__(self) -> None:
        self._by_user: defaultdict[int, set[Socket]] = defaultdict(set)
        self._all: set[Socket] = set()

    def add(self, socket: Socket, user_id: int | None = None) -> None:
        """`user_id` for a presence socket (it receives that user's bus events)."""
        self._all.add(socket)
        if user_id is not None:
            self._by_user[user_id].add(socket)

    def discard(self, socket: Socket, user_id: int | None = None) -> None:
        self._all.discard(socket)
        if user_id is not None and user_id in self._by_user:
            self._by_user[user_id].discard(socket)
            if not self._by_user[user_id]:
                del self._by_user[user_id]

    def __len__(self) -> int:
        return len(self._all)

    async def deliver(self, message: dict[str, Any]) -> None:
        """Hand a bus message to the sockets of the users it is addressed to, in order."""
        for uid in message["to"]:
            for socket in list(self._by_user.get(uid, ())):
                await socket.deliver(message)

    async def restarting(self) -> None:
        await asyncio.gather(*(socket.restarting() for socket in list(self._all)))

    async def resync(self) -> None:
        sockets = {s for group in self._by_user.values() for s in group}
        await asyncio.gather(*(socket.resync() for socket in sockets))
