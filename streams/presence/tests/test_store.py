"""The presence store rules, the same on both stores (MemoryStore and RedisStore)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from streams.presence.redis_store import RedisStore
from streams.presence.store import MemoryStore, PresenceStore, StreamState
from testing.fixtures import presence_prefix

LONG_MS = 60_000


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[PresenceStore]:
    made: PresenceStore = (
        MemoryStore() if request.param == "memory" else RedisStore(redis_url, presence_prefix(), "a")
    )
    await made.beat(LONG_MS)
    yield made
    await made.aclose()


async def test_online_while_a_socket_is_open_and_offline_only_on_expiry(store: PresenceStore) -> None:
    online_seq = await store.connect(1)
    assert online_seq > 0  # friends must hear "online", with this event sequence number
    assert await store.connect(1) == 0  # second tab: nothing new
    assert await store.count(1) == 2
    assert await store.online([1, 2]) == {1}
    assert not await store.disconnect(1, LONG_MS)
    assert await store.disconnect(1, LONG_MS)  # the last socket anywhere
    assert await store.count(1) == 0
    assert await store.online([1]) == {1}  # still online for friends during the grace
    assert await store.due() == []
    assert await store.expire(1) > online_seq
    assert await store.online([1]) == set()
    assert await store.expire(1) == 0


async def test_reconnecting_within_the_grace_cancels_the_expiry(store: PresenceStore) -> None:
    await store.connect(7)
    assert await store.disconnect(7, 0)
    assert await store.due() == [7]
    assert await store.connect(7) == 0  # a reload: friends never heard "offline"
    assert await store.due() == []
    assert await store.expire(7) == 0
    assert await store.online([7]) == {7}


async def test_a_close_without_an_open_changes_nothing(store: PresenceStore) -> None:
    await store.connect(3)
    assert not await store.disconnect(4, 0)
    assert await store.count(3) == 1
    assert await store.count(4) == 0


async def test_stream_state_follows_start_update_and_end(store: PresenceStore) -> None:
    first = await store.stream_start(
        5, StreamState(started_at="2026-01-02T03:04:05Z", denoise=True, atten_lim_db=30.0)
    )
    await store.stream_update(5, listeners=4, denoise=False)
    assert await store.streams([5, 6]) == {
        5: StreamState(started_at="2026-01-02T03:04:05Z", denoise=False, atten_lim_db=30.0, listeners=4)
    }
    ended = await store.stream_end(5)
    assert ended > first
    await store.stream_update(5, listeners=1)  # late news about an ended stream is dropped
    assert await store.streams([5]) == {}
