"""Presence through outages of its own parts, on a real deployment (`testing.stack`: Daphne on a
throw-away PostgreSQL and a private Redis):
- Redis killed and restarted empty: sockets close to reconnect, reconnects and polls are told to
  retry (never a 500), and afterwards nobody is shown online who left meanwhile;
- a Daphne process SIGKILLed: its streams end for friends on the survivor within 5 s (the
  default heartbeat and TTL), and the broadcaster can go live again there at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from testing import peers
from testing.stack import AppStack, until

GRACE_S = "1"


@pytest.fixture
def stack(make_stack: Callable[..., AppStack]) -> AppStack:
    return make_stack(["alice", "bob"], [("alice", "bob")], PRESENCE_GRACE_S=GRACE_S)


async def heartbeats(stack: AppStack, count: int) -> None:
    """Until the server has refreshed its heartbeat key `count` times (seen in Redis itself)."""
    client = aioredis.Redis.from_url(stack.redis.url)
    prefix = stack.env["PRESENCE_REDIS_PREFIX"]
    seen, last = 0, None
    try:
        async with asyncio.timeout(15):
            while seen < count:
                keys = await client.keys(f"{prefix}:alive:*")
                ttl = await client.pttl(keys[0]) if keys else None
                if ttl is not None and last is not None and ttl > last:
                    seen += 1  # refreshed since the last look
                last = ttl
                await asyncio.sleep(0.05)
    finally:
        await client.aclose()


async def friend_online(stack: AppStack, viewer: str, friend: str) -> bool:
    status, friends = await stack.api(viewer).acall("GET", "/api/friends/")
    assert status == 200
    return next(f["is_online"] for f in friends if f["username"] == friend)


async def friend_offline(stack: AppStack, viewer: str, friend: str) -> bool:
    return not await friend_online(stack, viewer, friend)


async def test_after_a_redis_restart_nobody_who_left_is_shown_online(stack: AppStack) -> None:
    bob_ws = await stack.socket("bob")
    assert (await bob_ws.next())["type"] == "snapshot"
    alice_ws = await stack.socket("alice")
    assert (await alice_ws.next())["type"] == "snapshot"
    assert (await bob_ws.next()) == {"type": "presence", "username": "alice", "is_online": True}

    await asyncio.to_thread(stack.redis.kill)
    for ws in (alice_ws, bob_ws):  # closed to reconnect, by the consumers' own disconnect path
        await ws.wait_closed(within=10)
        assert ws.close_code == 4011
    retry = await stack.socket("bob")  # a reconnect meanwhile: accepted, then told to retry
    await retry.wait_closed()
    assert (retry.refused, retry.close_code) == (None, 4011)
    status, body = await stack.api("bob").acall("GET", "/api/presence/")
    assert (status, set(body)) == (503, {"error"})

    await asyncio.to_thread(stack.redis.start)  # empty, as after a crash; alice does not come back
    bob_ws = await stack.socket("bob")
    snapshot = await bob_ws.next()
    assert [(f["username"], f["is_online"]) for f in snapshot["friends"]] == [("alice", False)]
    await heartbeats(stack, 2)  # the heartbeat restores this process's sockets: not alice's
    status, body = await stack.api("bob").acall("GET", "/api/presence/")
    assert status == 200
    assert [(f["username"], f["is_online"]) for f in body["friends"]] == [("alice", False)]
    assert await friend_online(stack, "alice", "bob")  # bob came back: online
    # The database's flag (the friends list) is corrected too, by the reconciler.
    await until(lambda: friend_offline(stack, "bob", "alice"), 15, "alice's flag in the database corrected")
    assert 500 not in stack.statuses()
    await bob_ws.close()


@pytest.mark.webrtc
async def test_a_killed_process_streams_end_for_friends_within_5_s(
    stack: AppStack, audio_file: Any, client_pcs: list
) -> None:
    survivor = stack.another_daphne()
    await asyncio.to_thread(survivor.start)
    bob_ws = await stack.socket("bob", server=survivor)
    assert (await bob_ws.next())["type"] == "snapshot"
    track = peers.ArrayTrack(peers.read_wav(audio_file("noisy_snr0")), loop=True)
    await peers.go_live_over_http(stack.api("alice"), track, client_pcs)  # on the first process
    live = await bob_ws.next()
    assert (live["type"], live["is_streaming"]) == ("streaming_status", True)
    await peers.wait_for(lambda: track.sent_s >= 1.0, timeout=20)

    await asyncio.to_thread(stack.daphne.kill)
    killed = time.monotonic()
    ended = await bob_ws.next(within=10)
    assert (ended["type"], ended["username"], ended["is_streaming"]) == ("streaming_status", "alice", False)
    assert time.monotonic() - killed < 5.0
    status, body = await stack.api("alice", survivor).acall("POST", "/api/stream/start/", {})
    assert status == 201, body  # not "already live"
    assert (await stack.api("alice", survivor).acall("POST", "/api/stream/stop/"))[0] == 200
    status, rows = await stack.api("bob", survivor).acall("GET", "/api/recordings/alice/")
    assert status == 200
    assert sorted((r["finished"], r["recovered"]) for r in rows) == [(True, False), (True, True)]
    await bob_ws.close()
