"""Fan-out of one live session's audio: the one encoded stream (`streams.live.opus`) copied,
packet by packet, to every listener.

Each listener owns a small bounded queue (`ListenerQueue`, ~200 ms). A listener whose sender
stops draining loses its oldest packets (counted); the others are never held back by it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

QUEUE_PACKETS = 10  # 200 ms per listener


@dataclass(frozen=True, slots=True)
class EncodedPacket:
    data: bytes
    arrival: float  # loop time at which the broadcaster frame it came from arrived


class ListenerQueue:
    """A bounded FIFO of packets for one listener: the oldest goes when it is full."""

    def __init__(self, maxlen: int = QUEUE_PACKETS, on_drop: Callable[[int], None] | None = None) -> None:
        self._items: deque[EncodedPacket] = deque()
        self._maxlen = maxlen
        self._on_drop = on_drop
        self._ready = asyncio.Event()
        self.dropped = 0
        self.closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, packet: EncodedPacket) -> None:
        if self.closed:
            return
        if len(self._items) >= self._maxlen:
            self._items.popleft()
            self._count_drops(1)
        self._items.append(packet)
        self._ready.set()

    def pop(self) -> EncodedPacket | None:
        if not self._items:
            return None
        packet = self._items.popleft()
        if not self._items:
            self._ready.clear()
        return packet

    async def wait(self, seconds: float) -> bool:
        """Wait up to `seconds` for a packet; True when one is queued."""
        if self._items:
            return True
        if seconds <= 0 or self.closed:
            return False
        try:
            async with asyncio.timeout(seconds):
                await self._ready.wait()
        except TimeoutError:
            return False
        return bool(self._items)

    def trim(self, keep: int) -> int:
        """Drop the oldest packets beyond `keep` (a standing backlog); returns how many."""
        excess = max(0, len(self._items) - keep)
        for _ in range(excess):
            self._items.popleft()
        if not self._items:
            self._ready.clear()
        self._count_drops(excess)
        return excess

    def close(self) -> None:
        self.closed = True
        self._items.clear()
        self._ready.set()  # wake a waiting track so it notices

    def _count_drops(self, count: int) -> None:
        if count:
            self.dropped += count
            if self._on_drop is not None:
                self._on_drop(count)


class Hub:
    """The listeners of one session and the single encoded stream they all receive."""

    def __init__(
        self, on_drop: Callable[[int], None] | None = None, queue_packets: int = QUEUE_PACKETS
    ) -> None:
        self._queues: set[ListenerQueue] = set()
        self._on_drop = on_drop
        self._queue_packets = queue_packets
        self.published = 0

    def __len__(self) -> int:
        return len(self._queues)

    def subscribe(self) -> ListenerQueue:
        queue = ListenerQueue(self._queue_packets, self._on_drop)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: ListenerQueue) -> None:
        self._queues.discard(queue)
        queue.close()

    def publish(self, packet: EncodedPacket) -> None:
        self.published += 1
        for queue in self._queues:
            queue.put(packet)

    def close(self) -> None:
        for queue in list(self._queues):
            self.unsubscribe(queue)
