"""A stream's hub relayed to Janus, and listeners made on other "processes": real Janus, real Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from fc25_denoise.errors import NotFound, Unavailable
from streams.live.fanout import EncodedPacket, Hub
from streams.live.opus import OpusEncoder
from streams.sfu.janus import JanusUnavailable
from streams.sfu.listeners import JanusListeners
from streams.sfu.relay import JanusRelay, RelayCallbacks
from streams.sfu.streaming import Streaming
from testing import janus as janus_helpers
from testing.janus import JanusServer, start_janus
from testing.peers import wait_for

pytestmark = pytest.mark.webrtc
ALICE, BOB, CAROL = 1, 2, 3


class Recorded:
    """RelayCallbacks that remember what the relay reported."""

    def __init__(self) -> None:
        self.counts: list[int] = []
        self.mountpoints: list[int | None] = []

    def callbacks(self) -> RelayCallbacks:
        return RelayCallbacks(listeners=self.counts.append, mountpoint=self.mountpoints.append)


class Process:
    """What one app process holds: a Streaming client and its JanusListeners."""

    def __init__(self, janus: JanusServer, redis_url: str, prefix: str, **kwargs: Any) -> None:
        self.streaming = Streaming(janus.url, janus.api_secret, janus.admin_key)
        self.redis = aioredis.Redis.from_url(redis_url)
        self.listeners = JanusListeners(self.streaming, self.redis, prefix, **kwargs)

    async def aclose(self) -> None:
        await self.listeners.aclose()
        await self.streaming.aclose()
        await self.redis.aclose()


@pytest.fixture
async def make_process(janus: JanusServer, redis_url: str) -> AsyncIterator[Callable[..., Process]]:
    prefix = f"test-sfu-{uuid.uuid4().hex[:8]}"
    made: list[Process] = []

    def make(server: JanusServer = janus, **kwargs: Any) -> Process:
        made.append(Process(server, redis_url, prefix, **kwargs))
        return made[-1]

    yield make
    for process in made:
        await process.aclose()


async def _broadcast(hub: Hub, seconds: float) -> None:
    """What a live session's pipeline does: one Opus encode, published to the hub in real time."""
    encoder = OpusEncoder()
    start = time.monotonic()
    for i, frame in enumerate(janus_helpers.tone_frames(seconds)):
        for data in encoder.encode(frame):
            hub.publish(EncodedPacket(data, time.monotonic()))
        await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))


async def _gone(process: Process, listener_id: str) -> bool:
    """The listener's record left Redis (its holder heard Janus hang the handle up)."""
    return not await process.redis.exists(process.listeners._listener_key(listener_id))


async def _listen(
    process: Process, owner: int, user: int, mountpoint: int, pcs: list[Any]
) -> tuple[Any, Any, str]:
    offered = await process.listeners.offer(owner, user, mountpoint)
    pc, _answer, capture = await janus_helpers.viewer({"sdp": offered.sdp, "type": "offer"})
    pcs.append(pc)
    return pc, capture, offered.listener_id


async def test_listeners_on_other_processes_hear_the_hub_and_are_cut_at_the_end(
    make_process: Callable[..., Process], client_pcs: list[Any]
) -> None:
    owner, b, c = make_process(), make_process(), make_process()
    hub, seen = Hub(), Recorded()
    relay = await JanusRelay.open(owner.streaming, "127.0.0.1", hub, "alice", seen.callbacks(), check_s=0.2)
    assert relay.mountpoint is not None
    playing = asyncio.create_task(_broadcast(hub, 20.0))
    try:
        pc, capture, listener_id = await _listen(b, ALICE, BOB, relay.mountpoint.id, client_pcs)
        assert await c.listeners.answer(listener_id, BOB, pc.localDescription.sdp) == ALICE  # any process
        await wait_for(lambda: seen.counts[-1:] == [1], timeout=10)
        await wait_for(lambda: len(capture.frames) >= 100, timeout=10)
        assert janus_helpers.dominant_hz(capture.audio()[-48_000:]) == pytest.approx(440, abs=5)
        await wait_for(lambda: c.listeners.listening(ALICE), timeout=5)
        assert await c.listeners.listening(ALICE) == [BOB]
    finally:
        playing.cancel()
    await relay.aclose()
    assert len(hub) == 0
    await wait_for(lambda: pc.connectionState in ("closed", "failed"), timeout=10)
    await wait_for(lambda: _gone(c, listener_id), timeout=5)
    assert await c.listeners.listening(ALICE) == []
    await capture.stop()


async def test_an_unfriending_on_any_process_cuts_only_that_listener_within_a_second(
    make_process: Callable[..., Process], client_pcs: list[Any]
) -> None:
    owner, b, c = make_process(), make_process(), make_process()
    hub = Hub()
    relay = await JanusRelay.open(owner.streaming, "127.0.0.1", hub, "alice", Recorded().callbacks())
    assert relay.mountpoint is not None
    playing = asyncio.create_task(_broadcast(hub, 30.0))
    try:
        bob_pc, bob_capture, bob_id = await _listen(b, ALICE, BOB, relay.mountpoint.id, client_pcs)
        await b.listeners.answer(bob_id, BOB, bob_pc.localDescription.sdp)
        carol_pc, carol_capture, carol_id = await _listen(b, ALICE, CAROL, relay.mountpoint.id, client_pcs)
        await b.listeners.answer(carol_id, CAROL, carol_pc.localDescription.sdp)
        await wait_for(lambda: bob_pc.connectionState == carol_pc.connectionState == "connected", timeout=10)

        started = time.monotonic()
        assert await c.listeners.cut(ALICE, BOB) == 1
        await wait_for(lambda: bob_pc.connectionState in ("closed", "failed"), timeout=5)
        assert time.monotonic() - started < 1.0
        heard = len(carol_capture.frames)
        await wait_for(lambda: len(carol_capture.frames) > heard + 25, timeout=5)  # carol still hears
        assert carol_pc.connectionState == "connected"
        await wait_for(lambda: c.listeners.listening(ALICE), timeout=5)
        assert await c.listeners.listening(ALICE) == [CAROL]
        with pytest.raises(NotFound):
            await c.listeners.answer(bob_id, BOB, bob_pc.localDescription.sdp)
    finally:
        playing.cancel()
        await relay.aclose()
        await bob_capture.stop()
        await carol_capture.stop()


async def test_an_offer_nobody_answers_is_hung_up_and_a_stranger_cannot_use_it(
    make_process: Callable[..., Process],
) -> None:
    owner, b = make_process(), make_process(answer_within_s=0.5)
    gone: list[str] = []
    b.listeners._on_gone = gone.append
    mountpoint = await owner.streaming.create_mountpoint("alice")
    offered = await b.listeners.offer(ALICE, BOB, mountpoint.id)
    with pytest.raises(NotFound):
        await owner.listeners.leave(offered.listener_id, CAROL)
    assert await owner.streaming.viewer_count(mountpoint.id) == 1
    await wait_for(lambda: gone == [offered.listener_id], timeout=5)
    assert await owner.streaming.viewer_count(mountpoint.id) == 0
    with pytest.raises(NotFound):
        await owner.listeners.leave(offered.listener_id, BOB)
    await owner.streaming.destroy_mountpoint(mountpoint.id)


async def test_janus_down_at_go_live_leaves_nothing_behind(
    tmp_path: Path, make_process: Callable[..., Process]
) -> None:
    server = start_janus(tmp_path)
    process = make_process(server)
    server.stop()
    hub = Hub()
    with pytest.raises(JanusUnavailable):
        await JanusRelay.open(process.streaming, "127.0.0.1", hub, "alice", Recorded().callbacks())
    assert len(hub) == 0
    with pytest.raises(Unavailable):
        await process.listeners.offer(ALICE, BOB, 12345)


async def test_janus_killed_mid_stream_is_reported_and_a_new_mountpoint_follows_its_return(
    tmp_path: Path, make_process: Callable[..., Process], client_pcs: list[Any]
) -> None:
    server = start_janus(tmp_path / "first")
    owner, b = make_process(server), make_process(server)
    hub, seen = Hub(), Recorded()
    relay = await JanusRelay.open(owner.streaming, "127.0.0.1", hub, "alice", seen.callbacks(), check_s=0.2)
    assert relay.mountpoint is not None
    playing = asyncio.create_task(_broadcast(hub, 60.0))
    again: JanusServer | None = None
    try:
        pc, capture, listener_id = await _listen(b, ALICE, BOB, relay.mountpoint.id, client_pcs)
        await b.listeners.answer(listener_id, BOB, pc.localDescription.sdp)
        await wait_for(lambda: seen.counts[-1:] == [1], timeout=10)
        server.kill()
        await wait_for(lambda: seen.mountpoints == [None], timeout=10)
        assert seen.counts[-1] == 0
        assert len(hub) == 0  # nothing is sent while Janus is away; the hub (and the recording) go on

        again = start_janus(tmp_path / "second", like=server)
        await wait_for(lambda: len(seen.mountpoints) == 2, timeout=15)
        assert seen.mountpoints[1] == relay.mountpoint.id
        pc2, capture2, second_id = await _listen(b, ALICE, BOB, relay.mountpoint.id, client_pcs)
        await b.listeners.answer(second_id, BOB, pc2.localDescription.sdp)
        await wait_for(lambda: len(capture2.frames) >= 50, timeout=10)
        assert janus_helpers.dominant_hz(capture2.audio()[-24_000:]) == pytest.approx(440, abs=10)
        await capture.stop()
        await capture2.stop()
    finally:
        playing.cancel()
        await relay.aclose()
        if again is not None:
            again.stop()
