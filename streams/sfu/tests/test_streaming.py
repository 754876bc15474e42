"""The Janus client against a real Janus started from deploy/janus/: mountpoints, viewers, losses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from streams.sfu.janus import JanusError, JanusSession, JanusUnavailable, post
from streams.sfu.rtp import RtpSender
from streams.sfu.streaming import Streaming
from testing import janus as janus_helpers
from testing.janus import JanusServer, start_janus
from testing.peers import wait_for

pytestmark = pytest.mark.webrtc


@pytest.fixture
async def make_streaming(janus: JanusServer) -> AsyncIterator[Callable[..., Streaming]]:
    """Streaming clients of the test's Janus, one per simulated app process; closed afterwards."""
    made: list[Streaming] = []

    def make(server: JanusServer = janus, **kwargs: Any) -> Streaming:
        made.append(Streaming(server.url, server.api_secret, server.admin_key, **kwargs))
        return made[-1]

    yield make
    for streaming in made:
        await streaming.aclose()


def _events() -> tuple[list[dict[str, Any]], asyncio.Event, Callable[[dict[str, Any]], None]]:
    seen: list[dict[str, Any]] = []
    changed = asyncio.Event()

    def on_event(event: dict[str, Any]) -> None:
        seen.append(event)
        changed.set()

    return seen, changed, on_event


async def _until_event(
    seen: list[dict[str, Any]], changed: asyncio.Event, kind: str, within: float = 5
) -> None:
    async with asyncio.timeout(within):
        while not any(e.get("janus") == kind for e in seen):
            changed.clear()
            await changed.wait()


async def test_only_the_streaming_plugin_and_http_are_loaded_and_the_secrets_are_enforced(
    janus: JanusServer,
) -> None:
    info = janus.info()
    assert list(info["plugins"]) == ["janus.plugin.streaming"]  # type: ignore[call-overload]
    assert list(info["transports"]) == ["janus.transport.http"]  # type: ignore[call-overload]
    assert info["api_secret"] is True
    async with httpx.AsyncClient() as http:
        with pytest.raises(JanusError, match="secret"):
            await post(http, janus.url, {"janus": "create"}, "wrong-secret")
        session = await JanusSession.open(janus.url, janus.api_secret, http)
        try:
            handle = await session.attach("janus.plugin.streaming")
            with pytest.raises(JanusError, match=r"admin_key|Unauthorized"):
                await session.message(
                    handle, {"request": "create", "type": "rtp", "admin_key": "wrong", "media": []}
                )
            with pytest.raises(JanusError):
                await session.attach("janus.plugin.echotest")
        finally:
            await session.aclose()


async def test_a_viewer_hears_the_rtp_sent_to_its_mountpoint_until_it_is_destroyed(
    make_streaming: Callable[..., Streaming], client_pcs: list[Any]
) -> None:
    owner, other = make_streaming(), make_streaming()  # two app processes
    mountpoint = await owner.create_mountpoint("alice")
    seen, changed, on_event = _events()
    ref, offer = await other.watch(mountpoint.id, on_event)
    pc, answer, capture = await janus_helpers.viewer(offer)
    client_pcs.append(pc)
    await owner.start(ref, answer)  # the answer may reach any process
    sender = await RtpSender.open("127.0.0.1", mountpoint.rtp_port)
    try:
        await janus_helpers.play_rtp(sender, janus_helpers.tone_frames(3.0))
    finally:
        sender.close()
    await _until_event(seen, changed, "webrtcup")
    assert await owner.viewer_count(mountpoint.id) == 1
    heard = capture.audio()
    assert len(heard) >= 2.5 * 48_000  # at most half a second lost to connecting
    assert janus_helpers.dominant_hz(heard[-48_000:]) == pytest.approx(440, abs=5)
    assert np.sqrt(np.mean(heard[-48_000:] ** 2)) > 0.05

    await owner.destroy_mountpoint(mountpoint.id)
    await _until_event(seen, changed, "hangup")
    await wait_for(lambda: pc.connectionState in ("closed", "failed"), timeout=10)
    await owner.destroy_mountpoint(mountpoint.id)  # already gone: fine
    await capture.stop()


async def test_a_viewer_hung_up_from_another_process_is_cut_and_its_process_told(
    make_streaming: Callable[..., Streaming], client_pcs: list[Any]
) -> None:
    owner, holder = make_streaming(), make_streaming()
    mountpoint = await owner.create_mountpoint("alice")
    seen, changed, on_event = _events()
    ref, offer = await holder.watch(mountpoint.id, on_event)
    pc, answer, capture = await janus_helpers.viewer(offer)
    client_pcs.append(pc)
    await holder.start(ref, answer)
    sender = await RtpSender.open("127.0.0.1", mountpoint.rtp_port)
    playing = asyncio.create_task(janus_helpers.play_rtp(sender, janus_helpers.tone_frames(10.0)))
    try:
        await _until_event(seen, changed, "webrtcup")
        await owner.hang_up(ref)
        await _until_event(seen, changed, "detached")
        await wait_for(lambda: pc.connectionState in ("closed", "failed"), timeout=10)
        assert await owner.viewer_count(mountpoint.id) == 0
    finally:
        playing.cancel()
        sender.close()
        await capture.stop()
    await owner.destroy_mountpoint(mountpoint.id)


async def test_an_idle_session_outlives_janus_session_timeout(
    tmp_path: Path, make_streaming: Callable[..., Streaming]
) -> None:
    server = start_janus(tmp_path, session_timeout_s=2)
    try:
        streaming = make_streaming(server, keepalive_s=0.5)
        first = await streaming.session()
        await asyncio.sleep(5)  # the timeout is what is tested: 2.5 timeouts without a request of ours
        assert not first.lost.is_set()
        assert await streaming.session() is first
        mountpoint = await streaming.create_mountpoint("still here")
        await streaming.destroy_mountpoint(mountpoint.id)
    finally:
        server.stop()


async def test_janus_killed_loses_the_session_tells_every_handle_and_comes_back(
    tmp_path: Path, make_streaming: Callable[..., Streaming]
) -> None:
    server = start_janus(tmp_path / "first")
    streaming = make_streaming(server)
    mountpoint = await streaming.create_mountpoint("alice")
    seen, changed, on_event = _events()
    await streaming.watch(mountpoint.id, on_event)
    session = await streaming.session()
    server.kill()
    await _until_event(seen, changed, "session_lost", within=15)
    assert session.lost.is_set()
    with pytest.raises(JanusUnavailable):
        await streaming.create_mountpoint("alice again")

    again = start_janus(tmp_path / "second", like=server)
    try:
        replacement = await streaming.create_mountpoint("alice again")
        assert (await streaming.session()) is not session
        assert await streaming.viewer_count(replacement.id) == 0
    finally:
        again.stop()
