"""RedisStore: sequence numbers across a Redis restart, and several processes on one Redis
(the reaper that cleans up after a dead process, a process reaped while alive)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from streams.presence.redis_store import RedisStore
from streams.presence.store import StreamState
from testing.fixtures import presence_prefix

LONG_MS = 60_000


@pytest.fixture
async def redis_pair(redis_url: str) -> AsyncIterator[tuple[RedisStore, RedisStore]]:
    """Two processes' stores on one Redis prefix."""
    prefix = presence_prefix()
    a, b = RedisStore(redis_url, prefix, "a"), RedisStore(redis_url, prefix, "b")
    await a.beat(LONG_MS)
    await b.beat(LONG_MS)
    yield a, b
    await a.aclose()
    await b.aclose()


async def kill(store: RedisStore) -> None:
    """What a SIGKILL leaves behind once the heartbeat key's TTL runs out."""
    await store.redis.delete(f"{store.prefix}:alive:{store.pid}")


async def test_sequence_numbers_keep_rising_after_redis_lost_its_data(redis_url: str) -> None:
    store = RedisStore(redis_url, presence_prefix(), "a")
    before = await store.connect(1)
    await store.redis.delete(*await store.redis.keys(f"{store.prefix}:*"))  # e.g. a restart
    after = await store.connect(1)
    await store.aclose()
    assert after > before  # open sockets, which remember `before`, accept the new event


# -- several processes on one Redis -------------------------------------------------------------


async def test_reaping_a_dead_process_ends_its_users_and_streams(
    redis_pair: tuple[RedisStore, RedisStore],
) -> None:
    a, b = redis_pair
    await a.connect(1)
    await a.connect(2)
    await b.connect(2)  # user 2 also has a tab on the live process
    await a.stream_start(1, StreamState(started_at="t", denoise=True, atten_lim_db=100.0))
    await b.stream_start(2, StreamState(started_at="t", denoise=True, atten_lim_db=100.0))
    assert (await b.reap(0)).in_grace == []  # everyone alive: nothing to do

    await kill(a)
    reaped = await b.reap(0)

    assert reaped.in_grace == [1]
    assert [uid for uid, _ in reaped.ended] == [1]
    assert await b.count(1) == 0
    assert await b.count(2) == 1
    assert set(await b.streams([1, 2])) == {2}
    assert await b.due() == [1]
    assert await b.expire(1) > 0
    assert (await b.reap(0)).ended == []  # reaped once only


async def test_a_process_reaped_while_alive_restores_its_state(
    redis_pair: tuple[RedisStore, RedisStore],
) -> None:
    a, b = redis_pair
    await a.connect(1)
    state = StreamState(started_at="t", denoise=True, atten_lim_db=50.0, listeners=2)
    await a.stream_start(1, state)
    await kill(a)  # e.g. a pause longer than the TTL
    await b.reap(LONG_MS)
    assert await a.beat(LONG_MS)  # it notices it was reaped...
    assert await a.restore({1: 1}, {1: state}) == []  # ...friends were never told "offline"
    assert await b.count(1) == 1
    assert await b.streams([1]) == {1: state}
    assert await b.due() == []
