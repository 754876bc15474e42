"""The stream's single Opus encode, sent to its Janus mountpoint as plain RTP over UDP.

aiortc's `RtpPacket` serialises each packet; a connected UDP socket on the event loop sends it
(one `sendto` per 20 ms packet, no thread). RTP timestamps count 48 kHz samples: one packet
after another they advance by 960, and after a stall of the source (no packet for longer than
`STALL_S`) they jump ahead by the time that passed, so a receiver's jitter buffer sees the gap
as the pause it was instead of audio arriving late. The first packet after a stall carries the
marker bit (a new talkspurt).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

from aiortc.rtp import RtpPacket

from streams.live.fanout import ListenerQueue
from streams.live.opus import FRAME_SAMPLES, SAMPLE_RATE

log = logging.getLogger(__name__)

OPUS_PT = 111
STALL_S = 0.1
FRAME_S = FRAME_SAMPLES / SAMPLE_RATE


class _Socket(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.errors = 0

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable: Janus is down or the mountpoint is gone. The relay notices
        # through its own checks; counting is enough here.
        self.errors += 1


class RtpSender:
    """One RTP stream (one SSRC) to `host:port`; use `await RtpSender.open(...)`."""

    def __init__(self, transport: asyncio.DatagramTransport, protocol: _Socket, payload_type: int) -> None:
        self._transport = transport
        self._protocol = protocol
        self._payload_type = payload_type
        self.ssrc = secrets.randbits(32)
        self._sequence = secrets.randbits(16)
        self._timestamp_base = secrets.randbits(32)
        self._slot = -1  # the last packet's slot (20 ms units since the first packet)
        self._first: float | None = None
        self._last: float | None = None
        self.sent = 0

    @classmethod
    async def open(cls, host: str, port: int, payload_type: int = OPUS_PT) -> RtpSender:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(_Socket, remote_addr=(host, port))
        return cls(transport, protocol, payload_type)

    @property
    def errors(self) -> int:
        return self._protocol.errors

    def send(self, payload: bytes, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self._first is None:
            self._first = now
        stalled = self._last is not None and now - self._last > STALL_S
        slot = self._slot + 1
        if stalled:
            slot = max(slot, int((now - self._first) / FRAME_S))
        marker = self._last is None or stalled
        self._slot, self._last = slot, now
        packet = RtpPacket(
            payload_type=self._payload_type,
            marker=int(marker),
            sequence_number=self._sequence,
            timestamp=(self._timestamp_base + slot * FRAME_SAMPLES) & 0xFFFFFFFF,
            ssrc=self.ssrc,
            payload=payload,
        )
        self._sequence = (self._sequence + 1) & 0xFFFF
        self._transport.sendto(packet.serialize())
        self.sent += 1

    def close(self) -> None:
        self._transport.close()


async def forward(queue: ListenerQueue, sender: RtpSender) -> None:
    """Send every packet the hub puts in `queue` until the queue is closed (cancel to stop)."""
    while not queue.closed:
        if not await queue.wait(1.0):
            continue
        item = queue.pop()
        if item is not None:
            sender.send(item.data)
