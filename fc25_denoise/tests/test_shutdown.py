"""SIGTERM while live, with requests still arriving (a real Daphne on a throw-away PostgreSQL and
a private Redis, real aiortc peers): the port closes, sockets hear "server restarting" and
close 4012, the stream ends with its recording finished, and the process is gone within 5 s."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import urllib.error
from collections.abc import Callable
from typing import Any

import pytest

from testing import peers
from testing.stack import AppStack

pytestmark = pytest.mark.webrtc


@pytest.fixture
def stack(make_stack: Callable[..., AppStack]) -> AppStack:
    return make_stack(["alice", "bob"], [("alice", "bob")])


def keep_asking(api: peers.HttpApi, statuses: list[int], stop: asyncio.Event) -> None:
    """A client that goes on calling the API until the server refuses connections."""
    while not stop.is_set():
        try:
            statuses.append(api.call("GET", "/api/stream/status/alice/")[0])
        except (urllib.error.URLError, ConnectionError):
            return


async def test_sigterm_while_live_is_graceful_and_quick(
    stack: AppStack, audio_file: Any, client_pcs: list
) -> None:
    alice, bob = stack.api("alice"), stack.api("bob")
    presence, page = await stack.socket("bob"), await stack.socket("bob", "/ws/stream/alice/")
    assert (await presence.next())["type"] == "snapshot"
    assert (await page.next())["type"] == "stream_state"
    track = peers.ArrayTrack(peers.read_wav(audio_file("noisy_snr0")), loop=True)
    await peers.go_live_over_http(alice, track, client_pcs)
    for ws in (presence, page):
        assert (await ws.next())["is_streaming"] is True
    pc, capture, _ = await peers.listen_over_http(bob, "alice", keep=False)
    client_pcs.append(pc)
    await peers.wait_for(lambda: capture.count >= 50, timeout=20)

    statuses: list[int] = []
    stop = asyncio.Event()
    asking = asyncio.create_task(asyncio.to_thread(keep_asking, bob, statuses, stop))
    await peers.wait_for(lambda: len(statuses) >= 3, timeout=10)
    proc = stack.daphne.proc
    assert proc is not None
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)

    for ws in (presence, page):
        while (told := await ws.next(within=5))["type"] != "server_restarting":
            assert told["type"] == "listeners"  # bob's own listener joined, nothing else
        await ws.wait_closed(within=5)
        assert ws.close_code == 4012  # "service restart": the pages reconnect
    assert await asyncio.to_thread(proc.wait, 10) == 0
    assert time.monotonic() - signalled < 5.0
    stop.set()
    async with asyncio.timeout(5):  # nothing hangs on the client side either
        await asyncio.shield(asking)
    assert set(statuses) <= {200, 503}

    # The next process finds the stream properly ended, nothing left to recover.
    with contextlib.suppress(OSError):
        await client_pcs[0].close()
    await asyncio.to_thread(stack.daphne.start)
    status, rows = await stack.api("alice").acall("GET", "/api/recordings/alice/")
    assert status == 200
    assert [(r["finished"], r["recovered"]) for r in rows] == [(True, False)]
    assert rows[0]["duration_s"] > 1.0
    status, stream = await stack.api("alice").acall("GET", "/api/stream/status/alice/")
    assert (status, stream["is_streaming"]) == (200, False)
