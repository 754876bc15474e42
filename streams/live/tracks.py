"""The track each listener's peer connection sends: pre-encoded Opus packets, paced by its own clock.

aiortc's sender only packs (never re-encodes) a track that returns `av.Packet`s, so one shared
encode serves every listener. Pacing: the track's own clock has a 20 ms slot per packet, and a
packet's pts is its slot. A packet may go out up to `EARLY_PACKETS` slots early (absorbing the
broadcaster's network jitter without adding latency); when none has arrived `GRACE_S` after its
slot, a silence packet goes instead, so a stalled broadcaster never freezes the listener. When
the sender itself falls behind (a busy loop), the missed slots are skipped, never burst out;
a standing backlog of packets is trimmed, so resumed audio never lags behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from streams.live.fanout import ListenerQueue
from streams.live.opus import FRAME_SAMPLES, SAMPLE_RATE, TIME_BASE

FRAME_S = FRAME_SAMPLES / SAMPLE_RATE
EARLY_PACKETS = 2
GRACE_S = 0.06  # a late packet is waited for this long before silence stands in
# Slots the sender may lag its clock before the missed ones are skipped: more than a grace
# period, which a stalled source makes every packet wait.
MAX_BEHIND = round(GRACE_S / FRAME_S) + 1
TRIM_WINDOW = 25  # packets (0.5 s) over which the smallest backlog is observed
TRIM_KEEP = 0  # packets of standing backlog tolerated (each one is 20 ms of added latency)


class ListenerTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(
        self,
        queue: ListenerQueue,
        silence: bytes,
        *,
        on_packet: Callable[[float], None] | None = None,
        on_silence: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self._queue = queue
        self._silence = silence
        self._on_packet = on_packet  # called with the packet's arrival time at hand-off
        self._on_silence = on_silence
        self._start: float | None = None
        self._slot = 0  # the next packet's slot on this track's clock (its pts / 960)
        self._sent = 0
        self.slots_skipped = 0
        self._window_min = len(queue)
        self._window_count = 0
        self.silence_sent = 0

    @property
    def queue(self) -> ListenerQueue:
        return self._queue

    @property
    def sent(self) -> int:
        """Packets returned to the sender so far (real and silence)."""
        return self._sent

    async def recv(self) -> av.Packet:
        if self.readyState != "live" or self._queue.closed:
            raise MediaStreamError
        due = self._due()
        # Measured before this slot's packet is due: what waits now is backlog, not the packet.
        self._observe_backlog()
        now = time.monotonic()
        early = due - EARLY_PACKETS * FRAME_S
        if now < early:
            await asyncio.sleep(early - now)
        got = await self._queue.wait(due + GRACE_S - time.monotonic())
        if self._queue.closed:
            self.stop()
            raise MediaStreamError
        item = self._queue.pop() if got else None
        return self._packet(item.data if item else self._silence, item.arrival if item else None)

    def _due(self) -> float:
        now = time.monotonic()
        if self._start is None:
            self._start = now
            self._queue.trim(1)  # whatever piled up before the connection was ready is stale
        behind = int((now - self._start) / FRAME_S) - self._slot
        if behind > MAX_BEHIND:
            # Skipped slots look like lost packets to the receiver, which conceals them; sending
            # them all now would only load an already late loop and the receiver's buffer.
            self._slot += behind
            self.slots_skipped += behind
        return self._start + self._slot * FRAME_S

    def _observe_backlog(self) -> None:
        self._window_min = min(self._window_min, len(self._queue))
        self._window_count += 1
        if self._window_count >= TRIM_WINDOW:
            if self._window_min > TRIM_KEEP:
                self._queue.trim(len(self._queue) - (self._window_min - TRIM_KEEP))
            self._window_count = 0
            self._window_min = len(self._queue)

    def _packet(self, data: bytes, arrival: float | None) -> av.Packet:
        packet = av.Packet(data)
        packet.pts = self._slot * FRAME_SAMPLES  # this listener's own timeline
        packet.time_base = TIME_BASE
        self._slot += 1
        self._sent += 1
        if arrival is None:
            self.silence_sent += 1
            if self._on_silence is not None:
                self._on_silence()
        elif self._on_packet is not None:
            self._on_packet(arrival)
        return packet
