"""Presence across processes through sockets, on one process without Redis, and with Redis down.

The store rules are in test_presence_store.py, the Redis store's own in test_presence_redis.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from pytest_django.fixtures import Settings
from redis.exceptions import ConnectionError as RedisConnectionError

from streams.models import Recording
from streams.presence.redis_store import RedisStore
from streams.presence.service import Presence
from streams.presence.store import MemoryStore
from streams.recordings import service as recordings
from testing.fixtures import WsHarness, presence_prefix
from testing.peers import wait_for
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
    media_root: Path,
) -> None:
    await in_thread(befriend)(alice, bob)
    recording = await in_thread(recordings.create_recording)(
        bob, denoise=True, atten_lim_db=100.0, record_raw=False
    )  # being written by process A when it dies
    prefix = presence_prefix()
    # Process A beats once at start and never again: to the others it dies after 1 s (long
    # enough for alice to see bob live first, on a loaded machine too).
    dying = make_harness(store=RedisStore(redis_url, prefix, "a"), ttl_s=1.0, heartbeat_s=1000, grace_s=0.1)
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
    # Nobody else would finish the dead process's recording: the reaper does, right after.
    finished = Recording.objects.filter(pk=recording.pk, finished=True, recovered=True)
    await wait_for(finished.aexists, timeout=5)


def test_default_timings_end_a_killed_processs_streams_within_5_s(settings: Settings) -> None:
    """The test above runs on short timings; the promise (a dead process's streams end for
    friends within 5 s of a SIGKILL, its users offline within 60 s) rests on the defaults: the
    dead process's key expires after the TTL, a survivor's next heartbeat reaps it (streams end
    then), and its users' grace period runs out."""
    assert settings.PRESENCE_TTL_S + settings.PRESENCE_HEARTBEAT_S <= 5
    assert settings.PRESENCE_TTL_S + settings.PRESENCE_HEARTBEAT_S + settings.PRESENCE_GRACE_S <= 60


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


class BlipStore(MemoryStore):
    """Misses the first socket close, as Redis would during a short outage."""

    def __init__(self) -> None:
        super().__init__()
        self.blips = 1

    async def disconnect(self, uid: int, grace_ms: int) -> bool:
        if self.blips:
            self.blips -= 1
            raise RedisConnectionError("connection reset")
        return await super().disconnect(uid, grace_ms)


@pytest.mark.django_db(transaction=True)
async def test_a_close_the_store_missed_is_told_on_the_next_heartbeat(alice: User) -> None:
    store = BlipStore()
    presence = Presence(store=store, grace_s=0, heartbeat_s=0.05)
    try:
        await presence.socket_opened(alice.pk)
        await presence.socket_closed(alice.pk)  # the store blinks: logged, never raised
        assert await store.count(alice.pk) == 1  # missed: alice would stay online for good

        async def offline() -> bool:
            return not await presence.is_online(alice.pk)

        await wait_for(offline, timeout=5)
        assert await store.count(alice.pk) == 0
    finally:
        await presence.aclose()


@pytest.mark.django_db(transaction=True)
async def test_stream_news_never_raises_when_redis_is_down(alice: User) -> None:
    presence = Presence(store=RedisStore("redis://127.0.0.1:1/0", presence_prefix(), "x"))
    await presence.stream_started(alice.pk, started_at=STARTED, denoise=True, atten_lim_db=100.0)
    await presence.settings_changed(alice.pk, denoise=False, atten_lim_db=10.0)
    await presence.listeners_changed(alice.pk, 2)
    await presence.stream_ended(alice.pk)
    assert await presence.is_online(alice.pk)  # unknown: the watchdog must not end the stream
    await presence.aclose()
