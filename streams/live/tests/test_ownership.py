"""The end of a stream is durable: a stop during a database outage is finished when the database
returns, friends are told, and the user can go live again (a real Daphne on a throw-away
PostgreSQL and a private Redis, a real aiortc broadcaster)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from testing import peers
from testing.stack import AppStack, until

pytestmark = pytest.mark.webrtc


@pytest.fixture
def stack(make_stack: Callable[..., AppStack]) -> AppStack:
    return make_stack(["alice", "bob"], [("alice", "bob")])


async def test_a_stop_during_a_database_outage_is_finished_when_it_returns(
    stack: AppStack, audio_file: Any, client_pcs: list
) -> None:
    alice = stack.api("alice")
    bob_ws = await stack.socket("bob")
    assert (await bob_ws.next())["type"] == "snapshot"
    track = peers.ArrayTrack(peers.read_wav(audio_file("noisy_snr0")), loop=True)
    await peers.go_live_over_http(alice, track, client_pcs)
    live = await bob_ws.next()
    assert (live["type"], live["is_streaming"]) == ("streaming_status", True)
    await peers.wait_for(lambda: track.sent_s >= 2.0, timeout=20)

    await asyncio.to_thread(stack.pg.stop)
    status, body = await alice.acall("POST", "/api/stream/stop/")
    assert (status, set(body)) == (503, {"error"})  # "briefly unavailable", not a failure
    await client_pcs[0].close()  # the page gives up its connection: the session ends by itself
    streamed = track.sent_s
    await until(lambda: stack.daphne.metrics()["rd_live_streams"] == 0, 15, "the session ended")
    await asyncio.to_thread(stack.pg.start)

    # Within seconds of the database's return: friends told, the row finished, the flag clear.
    ended = await bob_ws.next(within=10)
    assert (ended["type"], ended["username"], ended["is_streaming"]) == ("streaming_status", "alice", False)
    status, stream = await alice.acall("GET", "/api/stream/status/alice/")
    assert (status, stream["is_streaming"]) == (200, False)
    status, rows = await alice.acall("GET", "/api/recordings/alice/")
    assert status == 200
    assert [(row["finished"], row["size_bytes"] > 44) for row in rows] == [(True, True)]
    assert streamed - 1.5 <= rows[0]["duration_s"] <= streamed + 0.5

    # And alice is not locked out: she goes live again at once.
    status, body = await alice.acall("POST", "/api/stream/start/", {})
    assert status == 201, body
    assert (await alice.acall("POST", "/api/stream/stop/"))[0] == 200
    assert 500 not in stack.statuses()  # the outage answered 503s only
    await bob_ws.close()
