"""Presence across processes through sockets, on one process without Redis, and with Redis down.

The store rules are in test_presence_store.py, the Redis store's own in test_presence_redis.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from channels.db import database_sync_to_async

from streams.presence import Presence
from streams.presence_redis import RedisStore
from streams.presence_store import MemoryStore
from streams.tests.conftest import WsHarness, presence_prefix
from users.models import User

STARTED = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
in_thread = database_sync_to_async


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
