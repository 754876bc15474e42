"""RtpSender: what a mountpoint receives, packet by packet, over a real UDP socket."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest
from aiortc.rtp import RtpPacket

from streams.live.fanout import EncodedPacket, ListenerQueue
from streams.sfu.rtp import FRAME_S, OPUS_PT, RtpSender, forward


class _Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets: asyncio.Queue[RtpPacket] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.packets.put_nowait(RtpPacket.parse(data))


@pytest.fixture
async def inbox() -> AsyncIterator[tuple[_Inbox, int]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_Inbox, local_addr=("127.0.0.1", 0))
    yield protocol, transport.get_extra_info("sockname")[1]
    transport.close()


async def _next(inbox: _Inbox) -> RtpPacket:
    return await asyncio.wait_for(inbox.packets.get(), 2)


async def test_packets_follow_each_other_by_960_samples_with_one_ssrc(inbox: tuple[_Inbox, int]) -> None:
    receiver, port = inbox
    sender = await RtpSender.open("127.0.0.1", port)
    for i in range(5):
        sender.send(bytes([i]) * 40, now=100.0 + i * FRAME_S)
    got = [await _next(receiver) for _ in range(5)]
    sender.close()
    assert [p.payload for p in got] == [bytes([i]) * 40 for i in range(5)]
    assert {p.ssrc for p in got} == {sender.ssrc}
    assert {p.payload_type for p in got} == {OPUS_PT}
    assert [(b.sequence_number - a.sequence_number) % 65536 for a, b in itertools.pairwise(got)] == [1] * 4
    assert [(b.timestamp - a.timestamp) % 2**32 for a, b in itertools.pairwise(got)] == [960] * 4
    assert [p.marker for p in got] == [1, 0, 0, 0, 0]


async def test_after_a_stall_the_timestamp_jumps_by_the_time_that_passed(inbox: tuple[_Inbox, int]) -> None:
    receiver, port = inbox
    sender = await RtpSender.open("127.0.0.1", port)
    sender.send(b"a", now=10.0)
    sender.send(b"b", now=10.0 + FRAME_S + 0.01)  # a little late: jitter, not a stall
    sender.send(b"c", now=11.0)  # a second of nothing: the source stalled
    a, b, c = [await _next(receiver) for _ in range(3)]
    sender.close()
    assert (b.timestamp - a.timestamp) % 2**32 == 960
    assert (c.timestamp - a.timestamp) % 2**32 == 48_000
    assert (b.marker, c.marker) == (0, 1)
    assert (c.sequence_number - b.sequence_number) % 65536 == 1  # nothing was lost


async def test_forward_sends_what_the_hub_queues_until_the_queue_closes(inbox: tuple[_Inbox, int]) -> None:
    receiver, port = inbox
    sender = await RtpSender.open("127.0.0.1", port)
    queue = ListenerQueue()
    task = asyncio.create_task(forward(queue, sender))
    for i in range(3):
        queue.put(EncodedPacket(bytes([i + 1]) * 10, 0.0))
        assert (await _next(receiver)).payload == bytes([i + 1]) * 10
    queue.close()
    await asyncio.wait_for(task, 2)
    sender.close()
    assert sender.sent == 3
