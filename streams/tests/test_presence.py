"""Presence state rules on both stores, and the reaper that cleans up after a dead process."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable

import pytest
from channels.db import database_sync_to_async

from streams.presence import Presence
from streams.presence_store import MemoryStore, PresenceStore, RedisStore, StreamState
from streams.tests.conftest import WsHarness, presence_prefix
from users.models import User

STARTED = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
LONG_MS = 60_000
in_thread = database_sync_to_async


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[PresenceStore]:
    made: PresenceStore = (
        MemoryStore() if request.param == "memory" else RedisStore(redis_url, presence_prefix(), "a")
    )
    await made.beat(LONG_MS)
    yield made
    await made.aclose()


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


# -- the store rules, same on both backends ----------------------------------------------------


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


# -- Presence across processes, through sockets ------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_users_of_a_dead_process_go_offline_and_their_streams_end(
    make_harness: Callable[..., WsHarness],
    befriend: Callable[[User, User], None],
    alice: User,
    bob: User,
    redis_url: str,
) -> None:
    await in_thread(befriend)(alice, bob)
    prefix = presence_prefix()
    # Process A beats once at start and never again: to the others it dies after 0.3 s.
    dying = make_harness(store=RedisStore(redis_url, prefix, "a"), ttl_s=0.3, heartbeat_s=1000, grace_s=0.1)
    live = make_harness(store=RedisStore(redis_url, prefix, "b"), ttl_s=5, heartbeat_s=0.1, grace_s=0.1)
    await dying.join(bob)
    await dying.presence.stream_started(bob.pk, started_at=STARTED, denoise=True, atten_lim_db=100.0)
    alice_ws, snapshot = await live.join(alice)
    assert snapshot["friends"][0] | {"is_online": True, "is_streaming": True} == snapshot["friends"][0]

    heard = {m["type"]: m for m in [await alice_ws.receive_json_from(timeout=5) for _ in range(2)]}
    assert heard["streaming_status"] | {"username": "bob", "is_streaming": False} == heard["streaming_status"]
    assert heard["presence"] == {"type": "presence", "username": "bob", "is_online": False}
    bob_row = await User.objects.aget(pk=bob.pk)
    assert not bob_row.is_online
    assert not bob_row.is_streaming


# -- one process, no Redis -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_single_process_clears_stale_flags_on_start_and_everyone_on_close(
    alice: User, bob: User
) -> None:
    await User.objects.filter(pk__in=[alice.pk, bob.pk]).aupdate(is_online=True)  # left by a crash
    await User.objects.filter(pk=alice.pk).aupdate(is_streaming=True)
    presence = Presence(store=MemoryStore(), grace_s=60)
    await presence.socket_opened(alice.pk)
    assert await User.objects.filter(is_online=True).acount() == 1  # alice; bob's stale flag is gone
    await presence.stream_started(alice.pk, started_at=STARTED, denoise=True, atten_lim_db=100.0)
    await presence.aclose()
    assert await User.objects.filter(is_online=True).acount() == 0
    assert await User.objects.filter(is_streaming=True).acount() == 0
    assert not await presence.is_online(alice.pk)


@pytest.mark.django_db(transaction=True)
async def test_stream_news_never_raises_when_redis_is_down(alice: User) -> None:
    presence = Presence(store=RedisStore("redis://127.0.0.1:1/0", presence_prefix(), "x"))
    await presence.stream_started(alice.pk, started_at=STARTED, denoise=True, atten_lim_db=100.0)
    await presence.settings_changed(alice.pk, denoise=False, atten_lim_db=10.0)
    await presence.listeners_changed(alice.pk, 2)
    await presence.stream_ended(alice.pk)
    assert await presence.is_online(alice.pk)  # unknown: the watchdog must not end the stream
    await presence.aclose()
