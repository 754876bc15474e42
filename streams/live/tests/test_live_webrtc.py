"""The live path end to end with real aiortc peers through the ASGI app (inside scripts/netns-run)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from channels.db import database_sync_to_async
from django.conf import settings

from fc25_denoise.services import Services
from streams.live.session import LiveSession
from streams.models import Recording
from testing import peers
from testing.audio_checks import (
    RATE,
    WINDOW,
    chunk,
    chunk_lags,
    db,
    energy_db,
    envelope,
    lag_of,
    offline_denoise,
)
from users.models import User

pytestmark = [pytest.mark.webrtc, pytest.mark.django_db(transaction=True)]

CLIP_S = 5.0
DELAY = 1440  # the engine's delay at 48 kHz (denoise.engine.DeepFilterNet3)
FRAMES_100MS = 5


def session_of(live: Services, user: User) -> LiveSession:
    session = live.registry.session_for(user.pk)
    assert session is not None
    return session


@pytest.fixture
def noisy(audio_file: Any) -> np.ndarray:
    return peers.read_wav(audio_file("noisy_snr0"))[: int(CLIP_S * RATE)]


@pytest.fixture
def clip(noisy: np.ndarray, tmp_path: Path) -> Path:
    """The first CLIP_S seconds of the noisy speech, as a WAV file for aiortc's MediaPlayer."""
    path = tmp_path / "noisy-clip.wav"
    sf.write(path, noisy, RATE, subtype="PCM_16")
    return path


@pytest.fixture
async def people(alice: User, bob: User, carol: User, befriend: Any) -> tuple[User, User, User]:
    """alice broadcasts; bob and carol are her friends."""
    await database_sync_to_async(befriend)(alice, bob)
    await database_sync_to_async(befriend)(alice, carol)
    return alice, bob, carol


async def test_friend_hears_the_denoised_stream(
    live: Services,
    people: tuple[User, User, User],
    clip: Path,
    noisy: np.ndarray,
    audio_file: Any,
    client_pcs: list,
) -> None:
    alice, bob, _ = people
    broadcaster, listener = await peers.signed_in(live, alice), await peers.signed_in(live, bob)
    await peers.go_live(broadcaster, str(clip), client_pcs)  # aiortc's MediaPlayer plays the file
    capture = await peers.listen(listener, "alice", client_pcs)
    # Everything the clip holds, plus the path's delay, reaches the listener.
    await peers.wait_for(lambda: len(capture.frames) * 0.02 >= CLIP_S + 0.5, timeout=CLIP_S + 15)
    await peers.stop(broadcaster)

    noisy_f = noisy.astype(np.float32) / 32768
    clean = peers.read_wav(audio_file("clean_freesound_33711"))[: len(noisy)].astype(np.float32) / 32768
    reference = await asyncio.to_thread(offline_denoise, noisy)
    received = capture.audio()
    env_got, env_want, quiet_out, quiet_in = [], [], [], []
    size = RATE // 2  # half-second chunks, each aligned on its own (a loaded server drops frames)
    for i, lag in enumerate(chunk_lags(received, reference, chunk_s=0.5)):
        got = received[i * size : (i + 1) * size]
        want = chunk(reference, i * size - lag, size)
        # The offline output lags its input by the engine's delay: align the input likewise.
        noisy_in = chunk(noisy_f, i * size - lag - DELAY, size)
        clean_in = chunk(clean, i * size - lag - DELAY, size)
        if want is None or noisy_in is None or clean_in is None:
            continue
        env_got.append(envelope(got))
        env_want.append(envelope(want))
        silent = db(envelope(clean_in)) < -60  # the speaker is silent here: all is noise
        quiet_out.append(envelope(got)[silent])
        quiet_in.append(envelope(noisy_in)[silent])
    assert len(env_got) >= 2 * CLIP_S - 2  # nearly the whole clip was compared
    assert np.corrcoef(np.concatenate(env_got), np.concatenate(env_want))[0, 1] >= 0.8
    out, into = np.concatenate(quiet_out), np.concatenate(quiet_in)
    assert len(out) >= 25  # at least half a second of the speaker's silence to judge
    assert energy_db(out) <= energy_db(into) - 10


async def _switch_denoise(client: Any, session: LiveSession, enabled: bool) -> int:
    """Switch denoising; returns the index, in the listener's packets, of the first packet made
    with the new setting (the queued ones and a frame in flight were made before)."""
    (track,) = session.listeners.tracks()
    marks: list[int] = []
    apply = session.apply_settings

    def spy(**controls: Any) -> None:
        in_flight = session.media.frames_started - session.media.frames_out
        marks.append(track.sent + len(track.queue) + in_flight)
        apply(**controls)

    session.apply_settings = spy  # type: ignore[method-assign]
    response = await client.patch("/api/stream/settings/", {"denoise": enabled}, content_type=peers.JSON)
    session.apply_settings = apply  # type: ignore[method-assign]
    assert response.status_code == 200, response.content
    assert response.json()["denoise"] is enabled
    return marks[0]


def _settles_at(excess: np.ndarray, start: int, settled: Any) -> int:
    """The first window from `start` on where `settled` holds for the mean of the next 5."""
    for i in range(start, len(excess) - 5):
        if settled(np.nanmean(excess[i : i + 5])):
            return i
    raise AssertionError("the level never settled")


async def test_denoise_switch_takes_effect_within_100ms(
    live: Services, people: tuple[User, User, User], audio_file: Any, media_root: Path, client_pcs: list
) -> None:
    alice, bob, _ = people
    noise = peers.read_wav(audio_file("noise_freesound_573577"))
    broadcaster, listener = await peers.signed_in(live, alice), await peers.signed_in(live, bob)
    await peers.go_live(broadcaster, peers.ArrayTrack(noise), client_pcs)
    capture = await peers.listen(listener, "alice", client_pcs)
    session = session_of(live, alice)
    await peers.wait_for(lambda: session.media.frames_out >= 60 and len(capture.frames) >= 60, timeout=15)
    off = await _switch_denoise(broadcaster, session, False)
    await peers.wait_for(lambda: len(capture.frames) >= off + 60, timeout=10)
    on = await _switch_denoise(broadcaster, session, True)
    await peers.wait_for(lambda: len(capture.frames) >= on + 20, timeout=10)
    (track,) = session.listeners.tracks()
    await peers.stop(broadcaster)
    # Packet i of the server's track is frame i at the listener: none lost, none added (aiortc's
    # jitter buffer keeps the last few).
    await peers.wait_for(lambda: len(capture.frames) >= track.sent - 6, timeout=5)
    assert 0 <= track.sent - len(capture.frames) <= 6

    # "The input" is what the server received (the broadcaster's codec already colours it): the
    # raw recording. While denoising is off the listener hears it, delayed.
    rec = await Recording.objects.aget(owner=alice)
    raw = sf.read(media_root / rec.raw_path, dtype="float32")[0]
    received = capture.audio()
    lag = lag_of(received, raw)
    inputs = [chunk(raw, w * WINDOW - lag, WINDOW) for w in range(len(capture.frames))]
    excess = np.array(
        [
            db(envelope(got)[0]) - db(envelope(into)[0]) if into is not None else np.nan
            for got, into in zip(capture.frames, inputs, strict=True)
        ]
    )
    assert np.nanmean(excess[off - 40 : off]) <= -10  # denoised before the switch
    back = _settles_at(excess, off, lambda e: e >= -4)
    assert back - off <= FRAMES_100MS  # the noise is back at the input's level within 100 ms
    assert np.nanmean(excess[back:on]) >= -4
    down = _settles_at(excess, on, lambda e: e <= -10)
    assert down - on <= FRAMES_100MS  # and gone again within 100 ms of switching back


async def test_a_stuck_listener_does_not_hold_back_the_others(
    live: Services, people: tuple[User, User, User], noisy: np.ndarray, client_pcs: list
) -> None:
    alice, bob, carol = people
    broadcaster = await peers.signed_in(live, alice)
    await peers.go_live(broadcaster, peers.ArrayTrack(noisy), client_pcs)
    good = await peers.listen(await peers.signed_in(live, bob), "alice", client_pcs)
    await peers.listen(await peers.signed_in(live, carol), "alice", client_pcs)
    session = session_of(live, alice)
    await peers.wait_for(lambda: session.media.frames_out >= 25 and good.frames, timeout=15)
    good_track, stuck_track = session.listeners.tracks()

    never = asyncio.Event()

    async def stuck_recv() -> Any:  # this listener's sender stops draining its queue
        await never.wait()

    stuck_track.recv = stuck_recv  # type: ignore[method-assign]
    published, real = session.hub.published, good_track.sent - good_track.silence_sent
    dropped = good_track.queue.dropped  # before the window: the queue fills while ICE connects
    frames_before = len(good.frames)
    await peers.wait_for(lambda: stuck_track.queue.dropped >= 25, timeout=10)
    await peers.wait_for(lambda: len(good.frames) >= frames_before + 75, timeout=10)
    published, real = session.hub.published - published, good_track.sent - good_track.silence_sent - real
    dropped = good_track.queue.dropped - dropped
    in_queue = len(good_track.queue)
    await peers.stop(broadcaster)

    # The good listener got (nearly) every packet made meanwhile, without gaps. (A server starved
    # of CPU may stall its loop past the 200 ms queue now and then: allow 5% for that.)
    assert real + in_queue >= 0.95 * published
    assert dropped <= 0.05 * published
    assert np.diff(good.arrivals[frames_before:]).max() < 0.25
    assert live.registry.metrics.listener_packets_dropped._value.get() >= 25


async def test_recording_after_stop(
    live: Services, people: tuple[User, User, User], noisy: np.ndarray, media_root: Path, client_pcs: list
) -> None:
    alice, bob, carol = people
    broadcaster = await peers.signed_in(live, alice)
    track = peers.ArrayTrack(noisy[: 4 * RATE])
    await peers.go_live(broadcaster, track, client_pcs)
    session = session_of(live, alice)
    await peers.wait_for(lambda: session.media.frames_in >= 200, timeout=15)
    streamed = session.media.frames_in * 0.02
    await peers.stop(broadcaster)

    rec = await Recording.objects.aget(owner=alice)
    assert rec.finished
    assert abs(rec.duration_s - streamed) <= 0.05 * streamed
    for relative in (rec.audio_path, rec.raw_path):
        audio, rate = sf.read(media_root / relative)
        assert rate == RATE
        assert len(audio) / RATE == pytest.approx(rec.duration_s, abs=0.02)
        assert energy_db(audio) > -40

    friend = await peers.signed_in(live, bob)
    listing = await friend.get("/api/recordings/alice/")
    assert listing.status_code == 200
    assert rec.pk in [item["id"] for item in listing.json()]
    part = await friend.get(f"/api/recordings/{rec.pk}/audio/", headers={"Range": "bytes=0-1023"})
    assert part.status_code == 206
    body = b"".join([piece async for piece in part.streaming_content])  # type: ignore[attr-defined]
    assert body[:4] == b"RIFF"
    assert len(body) == 1024
    stranger = await peers.signed_in(live, carol)
    await database_sync_to_async(_unfriend)(alice, carol)
    assert (await stranger.get("/api/recordings/alice/")).status_code == 403
    assert (await stranger.get(f"/api/recordings/{rec.pk}/audio/")).status_code == 404
    assert settings.RECORD_RAW


def _unfriend(a: User, b: User) -> None:
    from users.models import Friendship

    Friendship.objects.filter(user_a__in=[a, b], user_b__in=[a, b]).delete()
