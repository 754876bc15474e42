"""A broadcaster frozen mid-stream (SIGSTOP of its process, like a stalled tab): listeners are
told within 5 s instead of sitting on silence, told again when it resumes, and the recording's
timeline is wall time, the gap recorded as silence (a real Daphne, a real aiortc broadcaster in
a process of its own)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from testing.broadcaster import BroadcasterProcess
from testing.stack import AppStack

pytestmark = pytest.mark.webrtc
FREEZE_S = 4.0


@pytest.fixture
def stack(make_stack: Callable[..., AppStack]) -> AppStack:
    return make_stack(["alice", "bob"], [("alice", "bob")])


async def wall(until: float) -> None:
    """The scenario's own timing (a stream this long): nothing to await but the clock."""
    await asyncio.sleep(max(0.0, until - time.monotonic()))


async def test_a_frozen_broadcaster_is_told_and_recorded_as_silence(stack: AppStack, audio_file: Any) -> None:
    page = await stack.socket("bob", "/ws/stream/alice/")  # bob on alice's page
    assert (await page.next())["is_streaming"] is False
    child = BroadcasterProcess(stack.daphne.base_url, stack.sessions["alice"], audio_file("noisy_snr0"))
    try:
        first_frame = (await asyncio.to_thread(child.wait_live))["first_frame"]
        assert (await page.next())["is_streaming"] is True
        await wall(first_frame + 2.0)

        child.freeze()
        frozen = time.monotonic()
        stalled = await page.next(within=6)
        assert time.monotonic() - frozen < 5.0
        assert (stalled["type"], stalled["state"]) == ("source", "stalled")
        await wall(frozen + FREEZE_S)
        child.resume()
        back = await page.next(within=5)
        assert (back["type"], back["state"]) == ("source", "ok")
        await wall(time.monotonic() + 2.0)

        finished = asyncio.create_task(asyncio.to_thread(child.finish))  # it stops its stream
        ended = await page.next(within=10)
        assert (ended["type"], ended["is_streaming"]) == ("streaming_status", False)
        stream_s = time.monotonic() - first_frame
        assert await finished == 0
    finally:
        await asyncio.to_thread(child.kill)
    status, rows = await stack.api("alice").acall("GET", "/api/recordings/alice/")
    assert status == 200
    assert len(rows) == 1
    # Wall time (less the stop's own round trip), not the 4 s shorter audio that arrived.
    assert stream_s - 0.8 <= rows[0]["duration_s"] <= stream_s + 0.2
    await page.close()
