"""StreamRegistry: every way a stream starts and ends, and what is left afterwards."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from channels.db import database_sync_to_async
from pytest_django.fixtures import Settings

from fc25_denoise.errors import Conflict, Forbidden, NotFound, Unavailable
from streams.cluster.router import StreamRouter
from streams.live.registry import StreamRegistry
from streams.live.session import LiveSession, Timing
from streams.live.webrtc import parse_offer
from streams.models import Recording
from streams.recordings import service as recordings
from testing import peers
from testing.disk import fill, small_disk
from users.models import User

pytestmark = [pytest.mark.webrtc, pytest.mark.django_db(transaction=True)]

FAST = Timing(first_media_s=0.5, media_gap_s=0.5, offline_grace_s=0.3, watchdog_s=0.05)


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * peers.RATE)) / peers.RATE
    return (6000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)


async def broadcast(registry: StreamRegistry, user: User, source: Any, pcs: list[Any]) -> LiveSession:
    session = await registry.start_stream(user)
    pc, offer = await peers.broadcaster(source)
    pcs.append(pc)
    answer = await registry.accept_offer(user, session.session_id, parse_offer(offer, "broadcast"))
    await peers.accept(pc, {"sdp": answer.sdp, "type": answer.type})
    return session


async def add_listener(registry: StreamRegistry, user: User, owner: str, pcs: list[Any]) -> peers.Capture:
    """The listen flow of the API (the server offers, the listener answers) on this registry."""
    router = StreamRouter(registry)
    offer = await router.listen(user, owner)
    pc, answer, capture = await peers.listener(offer)
    pcs.append(pc)
    await router.answer(user, owner, {"listener_id": offer["listener_id"], **answer})
    return capture


async def streaming(user: User) -> bool:
    await user.arefresh_from_db(fields=["is_streaming"])
    return user.is_streaming


async def assert_ended(registry: StreamRegistry, user: User) -> Recording:
    """Everything the end of a stream must leave behind, whatever ended it."""
    assert registry.session_for(user.pk) is None
    assert registry.open_peer_connections() == 0
    assert not await streaming(user)
    events = registry.events
    assert events.names(user.pk)[-1] == "stream_ended"  # type: ignore[attr-defined]
    assert events.calls[-1][2]["is_streaming_in_db"] is False  # type: ignore[attr-defined]  # committed first
    rec = await Recording.objects.filter(owner=user).alatest("started_at")
    assert rec.finished
    return rec


async def wait_ended(registry: StreamRegistry, user: User, within: float = 15) -> None:
    await peers.wait_for(lambda: registry.session_for(user.pk) is None, timeout=within)


async def test_start_and_stop_report_after_the_database_commits(make_registry: Any, alice: User) -> None:
    registry = await make_registry()
    session = await registry.start_stream(alice, denoise=False, atten_lim_db=30)
    assert (session.denoise, session.atten_lim_db) == (False, 30.0)
    name, _, details = registry.events.calls[0]
    assert name == "stream_started"
    assert details["is_streaming_in_db"] is True
    assert (details["denoise"], details["atten_lim_db"], details["started_at"]) == (
        False,
        30.0,
        session.started_at,
    )
    rec = await Recording.objects.aget(owner=alice)
    assert (rec.denoise, rec.atten_lim_db, rec.finished) == (False, 30.0, False)

    changed = await registry.update_settings(alice, denoise=True, atten_lim_db=None)
    assert (changed.denoise, changed.atten_lim_db) == (True, 30.0)
    assert registry.events.calls[-1][0] == "settings_changed"

    assert await registry.stop_stream(alice) is True
    await assert_ended(registry, alice)
    assert await registry.stop_stream(alice) is False
    assert registry.metrics.sessions_ended.labels("stopped")._value.get() == 1


async def test_one_stream_per_user(make_registry: Any, alice: User, bob: User) -> None:
    registry = await make_registry()
    await registry.start_stream(alice)
    with pytest.raises(Conflict):
        await registry.start_stream(alice)
    # Live on another process: presence's claim is the lock (the flag only reflects it).
    registry.events.held.add(bob.pk)
    with pytest.raises(Conflict):
        await registry.start_stream(bob)
    assert await Recording.objects.filter(owner=bob).acount() == 0
    assert not (await User.objects.aget(pk=bob.pk)).is_streaming
    await registry.stop_stream(alice)
    await assert_ended(registry, alice)


async def test_a_stale_live_flag_never_locks_the_user_out(make_registry: Any, alice: User) -> None:
    """A flag left on by a stream whose end the database never heard of (a crash during an
    outage): no live process holds the stream, so the start takes the flag over and finishes
    the old stream's recording from its file."""
    registry = await make_registry()
    old = await database_sync_to_async(recordings.create_recording)(
        alice, denoise=True, atten_lim_db=100.0, record_raw=False
    )
    await User.objects.filter(pk=alice.pk).aupdate(is_streaming=True)
    session = await registry.start_stream(alice)
    old = await Recording.objects.aget(pk=old.pk)
    assert (old.finished, old.recovered) == (True, True)
    assert session.recording_id != old.pk
    await registry.stop_stream(alice)
    await assert_ended(registry, alice)


async def test_a_stream_on_another_process_is_never_a_hang(
    make_registry: Any, alice: User, bob: User, befriend: Any
) -> None:
    registry = await make_registry()
    await database_sync_to_async(befriend)(alice, bob)
    await User.objects.filter(pk=alice.pk).aupdate(is_streaming=True)
    with pytest.raises(Unavailable):
        await StreamRouter(registry).listen(bob, "alice")
    status = await registry.status(bob, "alice")
    assert status.is_streaming is True
    assert status.listeners is None
    with pytest.raises(Conflict):
        await registry.stop_stream(alice)
    with pytest.raises(Conflict):
        await registry.update_settings(alice, denoise=False, atten_lim_db=None)


async def test_status_is_for_self_and_friends(
    make_registry: Any, alice: User, bob: User, carol: User, befriend: Any
) -> None:
    registry = await make_registry()
    await database_sync_to_async(befriend)(alice, bob)
    assert (await registry.status(alice, "ALICE")).is_streaming is False  # usernames are case-insensitive
    assert (await registry.status(bob, "alice")).listeners == 0
    with pytest.raises(Forbidden):
        await registry.status(carol, "alice")
    with pytest.raises(NotFound):
        await registry.status(carol, "nobody")


@pytest.mark.parametrize("redis", [False, True])
async def test_startup_recovers_recordings_and_stale_flags(
    make_registry: Any, alice: User, media_root: Path, settings: Settings, redis: bool
) -> None:
    settings.REDIS_URL = "redis://elsewhere:6379/0" if redis else ""
    folder = media_root / "recordings" / "alice"
    folder.mkdir(parents=True)
    samples = (np.ones(48_000, np.int16) * 100).tobytes()
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI", b"RIFF", 36, b"WAVE", b"fmt ", 16, 1, 1, 48000, 96000, 2, 16, b"data", 0
    )
    (folder / "crash.wav").write_bytes(header + samples)  # a crash left the sizes at 0
    rec = await Recording.objects.acreate(owner=alice, audio_path="recordings/alice/crash.wav")
    await User.objects.filter(pk=alice.pk).aupdate(is_streaming=True)

    await make_registry()

    await rec.arefresh_from_db()
    # Without Redis this is the only process, so the flag is stale and the file is nobody's;
    # with Redis, alice may be live on another process, writing this file: presence's reaper
    # decides, and finishes the recording if that process is dead.
    assert await streaming(alice) is redis
    assert (rec.finished, rec.recovered) == (not redis, not redis)
    if not redis:
        assert rec.duration_s == pytest.approx(1.0)


async def test_no_media_after_start_ends_the_stream(make_registry: Any, alice: User) -> None:
    registry = await make_registry(timing=FAST)
    await registry.start_stream(alice)
    await wait_ended(registry, alice, within=5)
    rec = await assert_ended(registry, alice)
    assert rec.duration_s == 0
    assert registry.metrics.sessions_ended.labels("no_media")._value.get() == 1


async def test_broadcaster_hanging_up_ends_the_stream(
    make_registry: Any, alice: User, client_pcs: list
) -> None:
    registry = await make_registry()
    session = await broadcast(registry, alice, peers.ArrayTrack(_tone(10)), client_pcs)
    await peers.wait_for(lambda: session.media.frames_out >= 10, timeout=10)
    await client_pcs[0].close()
    await wait_ended(registry, alice)
    rec = await assert_ended(registry, alice)
    assert rec.duration_s >= 0.2


async def test_media_that_stops_ends_the_stream(make_registry: Any, alice: User, client_pcs: list) -> None:
    registry = await make_registry(timing=FAST)
    source = peers.ArrayTrack(_tone(10))
    session = await broadcast(registry, alice, source, client_pcs)
    await peers.wait_for(lambda: session.media.frames_out >= 5, timeout=10)
    source.playing.clear()
    await wait_ended(registry, alice, within=10)
    await assert_ended(registry, alice)
    assert registry.metrics.sessions_ended.labels("media_stopped")._value.get() == 1


async def test_presence_gone_for_the_grace_period_ends_the_stream(make_registry: Any, alice: User) -> None:
    registry = await make_registry(timing=Timing(first_media_s=60, offline_grace_s=0.3, watchdog_s=0.05))
    session = await registry.start_stream(alice)
    answers = registry.events.online_answers
    await peers.wait_for(lambda: len(answers) >= 5, timeout=5)  # watchdog rounds: nothing happens
    assert registry.session_for(alice.pk) is session  # never seen online: presence has no say
    registry.events.online[alice.pk] = True
    await peers.wait_for(lambda: (alice.pk, True) in answers, timeout=5)
    registry.events.online[alice.pk] = False
    await wait_ended(registry, alice, within=5)
    await assert_ended(registry, alice)
    assert registry.metrics.sessions_ended.labels("offline")._value.get() == 1


async def test_listeners_come_and_go_and_are_counted(
    make_registry: Any,
    alice: User,
    bob: User,
    carol: User,
    befriend: Any,
    client_pcs: list,
    settings: Settings,
) -> None:
    settings.MAX_LISTENERS_PER_STREAM = 1
    registry = await make_registry()
    await database_sync_to_async(befriend)(alice, bob)
    await database_sync_to_async(befriend)(alice, carol)
    session = await broadcast(registry, alice, peers.ArrayTrack(_tone(10)), client_pcs)
    capture = await add_listener(registry, bob, "alice", client_pcs)
    with pytest.raises(Unavailable):  # the limit
        await add_listener(registry, carol, "alice", client_pcs)
    await peers.wait_for(lambda: len(capture.frames) >= 10, timeout=10)
    assert registry.metrics.listeners._value.get() == 1
    await client_pcs[1].close()  # bob leaves
    await peers.wait_for(lambda: session.listener_count == 0, timeout=10)
    await peers.wait_for(lambda: registry.events.calls[-1][2].get("count") == 0, timeout=5)
    counts = [d["count"] for n, _, d in registry.events.calls if n == "listeners_changed"]
    assert counts == [1, 0]
    assert registry.metrics.listeners._value.get() == 0
    assert registry.open_peer_connections() == 1  # the broadcaster's
    await registry.stop_stream(alice)
    await assert_ended(registry, alice)


async def test_shutdown_ends_every_stream(
    make_registry: Any, alice: User, bob: User, befriend: Any, client_pcs: list
) -> None:
    registry = await make_registry()
    await database_sync_to_async(befriend)(alice, bob)
    session = await broadcast(registry, alice, peers.ArrayTrack(_tone(10)), client_pcs)
    await add_listener(registry, bob, "alice", client_pcs)
    await peers.wait_for(lambda: session.media.frames_out >= 10, timeout=10)
    await registry.aclose()
    rec = await assert_ended(registry, alice)
    assert rec.duration_s >= 0.2
    with pytest.raises(Unavailable):
        await registry.start_stream(bob)


async def test_a_start_refused_for_a_full_disk_leaves_nothing(
    make_registry: Any, alice: User, media_root: Path
) -> None:
    registry = await make_registry()
    with small_disk(media_root, 64 * 1024):
        (media_root / "recordings" / "alice").mkdir(parents=True)  # she has recorded before
        fill(media_root)
        with pytest.raises(Unavailable, match="storage"):
            await registry.start_stream(alice)
    assert await Recording.objects.filter(owner=alice).acount() == 0  # no finished 0 s row
    assert not await streaming(alice)
    assert registry.events.names(alice.pk) == []
    assert registry.session_for(alice.pk) is None
