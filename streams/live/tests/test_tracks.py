"""The listener track: real-time pacing by its own clock, silence on stalls, no backlog after."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from aiortc.mediastreams import MediaStreamError

from streams.live.fanout import EncodedPacket, ListenerQueue
from streams.live.opus import FRAME_SAMPLES, TIME_BASE
from streams.live.tracks import FRAME_S, TRIM_KEEP, ListenerTrack

SILENCE = b"\xf8\xff\xfe"


class Feed:
    """Puts a packet into the queue every 20 ms, like a live session does."""

    def __init__(self, queue: ListenerQueue) -> None:
        self.queue = queue
        self.running = True
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        start, n = time.monotonic(), 0
        while True:
            if self.running:
                self.queue.put(EncodedPacket(b"audio", time.monotonic()))
            n += 1
            await asyncio.sleep(max(0.0, start + n * FRAME_S - time.monotonic()))

    async def aclose(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def parts() -> AsyncIterator[tuple[ListenerQueue, ListenerTrack, list[float]]]:
    queue = ListenerQueue()
    latencies: list[float] = []
    track = ListenerTrack(
        queue, SILENCE, on_packet=lambda arrival: latencies.append(time.monotonic() - arrival)
    )
    yield queue, track, latencies
    track.stop()


async def test_packets_carry_the_tracks_own_timeline(
    parts: tuple[ListenerQueue, ListenerTrack, list],
) -> None:
    queue, track, _ = parts
    feed = Feed(queue)
    try:
        packets = [await track.recv() for _ in range(10)]
    finally:
        await feed.aclose()
    assert [p.pts for p in packets] == [i * FRAME_SAMPLES for i in range(10)]
    assert all(p.time_base == TIME_BASE for p in packets)


async def test_sends_in_real_time_even_when_packets_are_waiting(
    parts: tuple[ListenerQueue, ListenerTrack, list],
) -> None:
    queue, track, _ = parts
    feed = Feed(queue)
    try:
        await track.recv()
        for _ in range(8):  # a burst arrives on top of the steady feed
            queue.put(EncodedPacket(b"audio", time.monotonic()))
        started = time.monotonic()
        for _ in range(60):
            await track.recv()
        elapsed = time.monotonic() - started
    finally:
        await feed.aclose()
    assert elapsed >= 57 * FRAME_S  # never more than EARLY_PACKETS ahead of its clock
    assert len(queue) <= TRIM_KEEP + 1  # the burst was trimmed: no standing delay


async def test_silence_while_the_source_stalls_then_no_backlog(
    parts: tuple[ListenerQueue, ListenerTrack, list],
) -> None:
    queue, track, latencies = parts
    feed = Feed(queue)
    try:
        for _ in range(10):
            await track.recv()
        feed.running = False  # the broadcaster stalls
        started = time.monotonic()
        stalled = [bytes(await track.recv()) for _ in range(15)]
        stall_time = time.monotonic() - started
        feed.running = True
        latencies.clear()
        resumed = [bytes(await track.recv()) for _ in range(40)]
    finally:
        await feed.aclose()
    assert stalled[-10:] == [SILENCE] * 10
    assert track.silence_sent >= 10
    assert stall_time >= 13 * FRAME_S  # silence goes out in real time, not in a burst
    assert resumed[-20:] == [b"audio"] * 20
    assert max(latencies[-20:]) < 0.1  # the resumed audio is not behind


async def test_a_pause_of_the_sender_is_forgiven_not_burst(
    parts: tuple[ListenerQueue, ListenerTrack, list],
) -> None:
    _, track, _ = parts
    for _ in range(3):
        await track.recv()
    await asyncio.sleep(0.5)  # e.g. the event loop was blocked
    started = time.monotonic()
    packets = [await track.recv() for _ in range(10)]
    assert time.monotonic() - started >= 7 * FRAME_S  # no burst to catch up
    assert track.slots_skipped >= 20  # the missed slots were skipped: the timeline stays real-time
    assert packets[0].pts >= (3 + 20) * FRAME_SAMPLES
    assert [p.pts - packets[0].pts for p in packets] == [i * FRAME_SAMPLES for i in range(10)]


async def test_ends_when_its_queue_closes(parts: tuple[ListenerQueue, ListenerTrack, list]) -> None:
    queue, track, _ = parts
    pending = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    queue.close()
    with pytest.raises(MediaStreamError):
        await pending
    with pytest.raises(MediaStreamError):
        await track.recv()
