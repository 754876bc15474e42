"""A broadcaster that reloads or drops resumes the same stream within the grace (real WebRTC,
inside scripts/netns-run): same session, same recording (the gap recorded as silence, so the
file's timeline is the wall clock's), listeners kept; past the grace the stream ends."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from channels.db import database_sync_to_async

from streams.cluster.router import StreamRouter
from streams.live.lifecycle import SessionState
from streams.live.registry import StreamRegistry
from streams.live.session import LiveSession, Timing
from streams.live.webrtc import parse_offer
from streams.models import Recording
from testing import peers
from users.models import User

pytestmark = [pytest.mark.webrtc, pytest.mark.django_db(transaction=True)]

TONE_HZ = 300


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * peers.RATE)) / peers.RATE
    return (6000 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.int16)


async def _connect(registry: StreamRegistry, user: User, session_id: str, pcs: list[Any]) -> None:
    pc, offer = await peers.broadcaster(peers.ArrayTrack(_tone(60)))
    pcs.append(pc)
    answer = await registry.accept_offer(user, session_id, parse_offer(offer, "broadcast"))
    await peers.accept(pc, {"sdp": answer.sdp, "type": answer.type})


def _loud(frames: list[np.ndarray]) -> int:
    return sum(1 for frame in frames if np.sqrt(np.mean(frame**2)) > 0.01)


async def test_a_dropped_broadcaster_resumes_the_same_stream_recording_and_listeners(
    make_registry: Any, alice: User, bob: User, befriend: Any, client_pcs: list, media_root: Path
) -> None:
    registry = await make_registry(timing=Timing(resume_grace_s=10, watchdog_s=0.05))
    await database_sync_to_async(befriend)(alice, bob)
    session: LiveSession = await registry.start_stream(alice, denoise=False)  # bob hears the tone as sent
    await _connect(registry, alice, session.session_id, client_pcs)
    capture = await _add_listener(registry, bob, client_pcs)
    await peers.wait_for(lambda: session.media.frames_out >= 50 and _loud(capture.frames) >= 25, timeout=15)
    first_media = session.media_since

    await client_pcs[0].close()  # the page reloads (or its connection drops)
    await peers.wait_for(lambda: session.state is SessionState.RECONNECTING, timeout=5)
    status = await registry.status(alice, "alice")
    assert (status.state, status.resumable, status.session_id) == ("reconnecting", True, session.session_id)
    assert status.listener_names == ["bob"]  # still listening: silence meanwhile
    during = len(capture.frames)
    await peers.wait_for(lambda: len(capture.frames) >= during + 50, timeout=5)
    assert _loud(capture.frames[during + 20 : during + 50]) == 0  # past what was on its way

    await _connect(registry, alice, session.session_id, client_pcs)  # the reloaded page's offer
    assert registry.session_for(alice.pk) is session
    assert (session.state, session.resumed) == (SessionState.LIVE, 1)
    back = len(capture.frames)
    await peers.wait_for(lambda: _loud(capture.frames[back:]) >= 25, timeout=15)  # bob hears her again
    assert registry.metrics.sessions_resumed._value.get() == 1
    await peers.wait_for(lambda: session.media.frames_out >= 150, timeout=15)
    assert await registry.stop_stream(alice)
    wall = time.monotonic() - first_media

    assert await Recording.objects.filter(owner=alice).acount() == 1  # one stream, one recording
    rec = await Recording.objects.aget(owner=alice)
    raw, rate = sf.read(media_root / rec.raw_path, dtype="float32")
    assert abs(len(raw) / rate - wall) < 0.5  # the file's timeline is the wall clock's
    silent = np.flatnonzero(raw == 0.0)
    runs = np.split(silent, np.flatnonzero(np.diff(silent) != 1) + 1)
    gap = max(runs, key=len)
    assert len(gap) / rate >= 0.5  # the time without a connection, recorded as silence...
    assert gap[0] > 0  # ...between her audio before
    assert gap[-1] < len(raw) - 1  # and after
    assert np.sqrt(np.mean(raw[: gap[0]] ** 2)) > 0.05
    assert np.sqrt(np.mean(raw[gap[-1] + 1 :] ** 2)) > 0.05


async def test_a_broadcaster_not_back_within_the_grace_ends_the_stream(
    make_registry: Any, alice: User, client_pcs: list
) -> None:
    registry = await make_registry(timing=Timing(resume_grace_s=0.5, watchdog_s=0.05))
    session = await registry.start_stream(alice)
    await _connect(registry, alice, session.session_id, client_pcs)
    await peers.wait_for(lambda: session.media.frames_out >= 10, timeout=10)
    await client_pcs[0].close()
    await peers.wait_for(lambda: session.state is SessionState.RECONNECTING, timeout=5)
    await peers.wait_for(lambda: registry.session_for(alice.pk) is None, timeout=5)
    ended = registry.metrics.sessions_ended
    reasons = ("broadcaster_closed", "broadcaster_ended", "broadcaster_failed")  # whichever came first
    assert sum(ended.labels(reason)._value.get() for reason in reasons) == 1
    assert registry.open_peer_connections() == 0
    await alice.arefresh_from_db()
    assert not alice.is_streaming
    assert (await Recording.objects.aget(owner=alice)).finished


async def test_status_tells_the_owner_how_to_resume_and_who_listens_and_friends_only_the_state(
    make_registry: Any, alice: User, bob: User, befriend: Any, client_pcs: list
) -> None:
    registry = await make_registry()
    await database_sync_to_async(befriend)(alice, bob)
    session = await registry.start_stream(alice)
    await _connect(registry, alice, session.session_id, client_pcs)
    capture = await _add_listener(registry, bob, client_pcs)
    await peers.wait_for(lambda: capture.count >= 5 and session.listener_count == 1, timeout=10)
    own = (await registry.status(alice, "alice")).as_json()
    assert own["state"] == "live"
    assert (own["resumable"], own["session_id"], own["listener_names"]) == (True, session.session_id, ["bob"])
    theirs = (await registry.status(bob, "alice")).as_json()
    assert (theirs["state"], theirs["listeners"]) == ("live", 1)
    assert (theirs["resumable"], theirs["session_id"], theirs["listener_names"]) == (False, None, None)
    await registry.stop_stream(alice)
    after = (await registry.status(alice, "alice")).as_json()
    assert (after["is_streaming"], after["state"], after["resumable"]) == (False, None, False)


async def _add_listener(registry: StreamRegistry, user: User, pcs: list[Any]) -> peers.Capture:
    router = StreamRouter(registry)
    offer = await router.listen(user, "alice")
    pc, answer, capture = await peers.listener(offer)
    pcs.append(pc)
    await router.answer(user, "alice", {"listener_id": offer["listener_id"], **answer})
    return capture
