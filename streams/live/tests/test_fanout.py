"""Fan-out: one Opus encode per frame, bounded per-listener queues that drop their oldest."""

from __future__ import annotations

import asyncio

import numpy as np
from aiortc.codecs.opus import OpusDecoder
from aiortc.jitterbuffer import JitterFrame

from streams.live.fanout import EncodedPacket, Hub, ListenerQueue
from streams.live.opus import FRAME_SAMPLES, SAMPLE_RATE, OpusEncoder, silence_packet


def _decode(packets: list[bytes]) -> np.ndarray:
    decoder = OpusDecoder()
    out = [
        f.to_ndarray().reshape(-1, 2)[:, 0]
        for i, p in enumerate(packets)
        for f in decoder.decode(JitterFrame(data=p, timestamp=i * FRAME_SAMPLES))
    ]
    return np.concatenate(out).astype(np.float64)


def _packet(n: int) -> EncodedPacket:
    return EncodedPacket(bytes([n]), float(n))


def test_encoder_makes_one_decodable_20ms_packet_per_frame() -> None:
    encoder = OpusEncoder()
    t = np.arange(FRAME_SAMPLES * 25) / SAMPLE_RATE
    tone = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    mono = (tone / 32768).astype(np.float32)  # the live path's one format
    packets = [encoder.encode(mono[i : i + FRAME_SAMPLES]) for i in range(0, len(tone), FRAME_SAMPLES)]
    assert all(len(p) == 1 for p in packets)
    decoded = _decode([p[0] for p in packets])
    assert len(decoded) == len(tone)
    level = np.sqrt(np.mean(decoded[FRAME_SAMPLES * 5 :] ** 2))
    assert 0.7 * 8000 / np.sqrt(2) < level < 1.3 * 8000 / np.sqrt(2)


def test_encoder_rechunks_other_frame_sizes() -> None:
    encoder = OpusEncoder()
    sizes = [480, 480, 2880, 960]
    counts = [len(encoder.encode(np.zeros(n, np.float32))) for n in sizes]
    assert counts == [0, 1, 3, 1]


def test_silence_packet_decodes_to_silence() -> None:
    decoded = _decode([silence_packet()] * 5)
    assert np.max(np.abs(decoded)) < 10


def test_queue_drops_its_oldest_when_full_and_counts() -> None:
    drops: list[int] = []
    queue = ListenerQueue(maxlen=3, on_drop=drops.append)
    for n in range(5):
        queue.put(_packet(n))
    assert [queue.pop().data[0] for _ in range(3)] == [2, 3, 4]  # type: ignore[union-attr]
    assert queue.pop() is None
    assert queue.dropped == 2
    assert drops == [1, 1]


def test_trim_keeps_the_newest() -> None:
    queue = ListenerQueue(maxlen=10)
    for n in range(6):
        queue.put(_packet(n))
    assert queue.trim(2) == 4
    assert [queue.pop().data[0] for _ in range(2)] == [4, 5]  # type: ignore[union-attr]
    assert queue.dropped == 4


async def test_a_queue_trimmed_empty_waits_for_the_next_packet() -> None:
    queue = ListenerQueue()
    queue.put(_packet(1))
    queue.trim(0)
    assert await queue.wait(0.02) is False  # nothing to send: it must not wake at once


async def test_wait_returns_when_a_packet_arrives_or_times_out() -> None:
    queue = ListenerQueue()
    assert await queue.wait(0.01) is False
    loop = asyncio.get_running_loop()
    loop.call_later(0.01, queue.put, _packet(1))
    assert await queue.wait(1.0) is True
    queue.close()
    assert await queue.wait(1.0) is False
    queue.put(_packet(2))  # ignored once closed
    assert len(queue) == 0


def test_hub_copies_each_packet_to_every_listener_and_a_full_one_does_not_block_others() -> None:
    hub = Hub(queue_packets=4)
    fast, slow = hub.subscribe(), hub.subscribe()
    for n in range(10):
        hub.publish(_packet(n))
        assert fast.pop().data[0] == n  # type: ignore[union-attr]
    assert len(slow) == 4
    assert slow.dropped == 6
    assert fast.dropped == 0
    hub.unsubscribe(slow)
    hub.publish(_packet(11))
    assert len(slow) == 0
    assert len(hub) == 1
    hub.close()
    assert fast.closed
    assert len(hub) == 0
