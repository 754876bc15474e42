"""One LiveSession without WebRTC: its pipeline, its bounded inbox, draining and closing."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from aiortc import RTCIceServer

from denoise.stream import Controls
from fc25_denoise.errors import Unavailable
from streams.live.lifecycle import TransitionError
from streams.live.metrics import Metrics
from streams.live.opus import silence_packet
from streams.live.pipeline import INBOX_FRAMES
from streams.live.session import LiveSession, SessionResources, SessionShared, Timing
from streams.live.webrtc import parse_offer
from streams.recordings.recorder import Recorder
from testing import peers

pytestmark = pytest.mark.webrtc


class FakeProcessor:
    """Stands in for the engine adapter: copies blocks, optionally slowly."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.slow_s = delay_s
        self.delay_s = 0.03
        self.controls = Controls()
        self.closed = False
        self.calls = 0

    async def process_samples(self, samples: np.ndarray) -> np.ndarray:
        self.calls += 1
        await asyncio.sleep(self.slow_s)
        return samples

    async def process_samples_then(self, samples: np.ndarray, then: Callable[[np.ndarray], Any]) -> Any:
        return then(await self.process_samples(samples))

    def close(self) -> None:
        self.closed = True


@pytest.fixture
async def make_session(tmp_path: Path) -> AsyncIterator[Any]:
    made: list[LiveSession] = []

    def make(
        processor: FakeProcessor, ice_servers: Callable[[], list[RTCIceServer]] = list, **timing: float
    ) -> tuple[LiveSession, Recorder, Metrics]:
        recorder = Recorder(tmp_path / f"{len(made)}.wav", tmp_path / f"{len(made)}-raw.wav")
        metrics = Metrics()
        shared = SessionShared(
            metrics=metrics,
            silence=silence_packet(),
            ice_servers=ice_servers,
            events=Offline(),  # type: ignore[arg-type]
            max_listeners=2,
            listeners_per_user=2,
            timing=Timing(**{"resume_grace_s": 0.0, **timing}),  # a track's end ends it
        )
        session = LiveSession(user_id=1, session_id="s" * 32, shared=shared)
        session.go_live(
            SessionResources(
                recording_id=1,
                started_at=dt.datetime.now(dt.UTC),
                processor=processor,  # type: ignore[arg-type]
                recorder=recorder,
            )
        )
        made.append(session)
        return session, recorder, metrics

    yield make
    for session in made:
        await session.close()


class Offline:
    """The session's StreamEvents: its owner is never online; listener counts are kept."""

    def __init__(self) -> None:
        self.counts: list[int] = []

    async def listeners_changed(self, user_id: int, count: int) -> None:
        self.counts.append(count)

    async def is_online(self, user_id: int) -> bool:
        return False

    async def source_stalled(self, user_id: int, stalled: bool) -> None:
        return None


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * peers.RATE)) / peers.RATE
    return (6000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)


async def test_every_frame_is_processed_recorded_and_published(make_session: Any, tmp_path: Path) -> None:
    processor = FakeProcessor()
    session, _, metrics = make_session(processor)
    session.attach(peers.ArrayTrack(_tone(0.4), end=True))
    await asyncio.wait_for(session.ended, timeout=5)  # the source ends: the session asks to end
    assert session.ended.result() == "broadcaster_ended"
    stats = await session.close()
    assert session.media.frames_in == session.media.frames_out == processor.calls == 20
    assert session.hub.published == 20  # one encoded packet per frame
    assert metrics.frames_processed._value.get() == 20
    assert stats.duration_s == pytest.approx(0.4)
    clean, rate = sf.read(tmp_path / "0.wav")
    assert rate == peers.RATE
    assert len(clean) == int(0.4 * peers.RATE)
    assert processor.closed


async def test_a_slow_engine_drops_the_oldest_input_not_the_loop(make_session: Any) -> None:
    session, _, metrics = make_session(FakeProcessor(delay_s=0.05))
    session.attach(peers.ArrayTrack(_tone(3.0), end=True, real_time=False))  # 150 frames arrive at once
    await asyncio.wait_for(session.ended, timeout=5)
    await peers.wait_for(lambda: session.media.frames_out >= 3, timeout=5)
    assert session.media.frames_in == 150
    assert metrics.input_frames_dropped._value.get() >= 150 - INBOX_FRAMES - 5
    assert metrics.frames_late._value.get() >= 1


async def test_closing_records_what_already_arrived(make_session: Any) -> None:
    session, _, _ = make_session(FakeProcessor(delay_s=0.01))
    session.attach(peers.ArrayTrack(_tone(0.6), end=True, real_time=False))
    await asyncio.wait_for(session.ended, timeout=5)
    stats = await session.close()  # frames still in the inbox are drained into the recording
    assert session.media.frames_out == 30
    assert stats.duration_s == pytest.approx(0.6)


async def test_close_is_idempotent_and_refuses_new_peers(make_session: Any) -> None:
    session, _, _ = make_session(FakeProcessor())
    first, second = await asyncio.gather(session.close(), session.close())
    assert first is second
    assert await session.close() is first
    assert session.ended.result() == "closed"
    with pytest.raises(Unavailable):
        await session.listeners.offer(1)


async def test_each_peer_connection_asks_for_fresh_ice_servers(make_session: Any) -> None:
    asked: list[str] = []  # TURN credentials expire: a late listener must not get stale ones

    def servers() -> list[RTCIceServer]:
        asked.append("asked")
        return []

    session, _, _ = make_session(FakeProcessor(), ice_servers=servers)
    sender, offer = await peers.broadcaster(peers.ArrayTrack(_tone(0.2), loop=True))
    await session.accept_broadcast(parse_offer(offer, "broadcast"))
    assert len(asked) == 1
    listener_id, offer = await session.listeners.offer(1)
    receiver, answer, _ = await peers.listener({"sdp": offer, "type": "offer"})
    await session.listeners.answer(listener_id, 1, answer["sdp"])
    assert len(asked) == 2
    await asyncio.gather(sender.close(), receiver.close())


async def test_no_media_at_all_asks_to_end(make_session: Any) -> None:
    session, _, _ = make_session(FakeProcessor(), first_media_s=0.2, watchdog_s=0.05)
    assert await asyncio.wait_for(session.ended, timeout=5) == "no_media"


async def test_media_that_stops_asks_to_end(make_session: Any) -> None:
    session, _, _ = make_session(FakeProcessor(), media_gap_s=0.3, watchdog_s=0.05)
    source = peers.ArrayTrack(_tone(5.0))
    session.attach(source)
    await peers.wait_for(lambda: session.media.frames_in >= 5, timeout=5)
    source.playing.clear()  # the broadcaster goes quiet without hanging up
    assert await asyncio.wait_for(session.ended, timeout=5) == "media_stopped"


async def test_one_mono_block_per_frame_goes_to_the_engine_the_recorder_and_the_encoder(
    make_session: Any,
) -> None:
    """aiortc's s16 stereo frames are converted once, at the entry; every stage gets that array."""
    processor = FakeProcessor()
    session, recorder, _ = make_session(processor)
    engine_in: list[np.ndarray] = []
    process = processor.process_samples

    async def engine(samples: np.ndarray) -> np.ndarray:
        engine_in.append(samples)
        return await process(samples)

    written: list[tuple[np.ndarray, np.ndarray]] = []
    write = recorder.write
    recorder.write = lambda clean, raw=None, **kw: (written.append((clean, raw)), write(clean, raw, **kw))  # type: ignore[method-assign]
    encoded: list[np.ndarray] = []
    encoder = session.media._encoder
    encode = encoder.encode
    encoder.encode = lambda samples: (encoded.append(samples), encode(samples))[1]  # type: ignore[method-assign]
    processor.process_samples = engine  # type: ignore[method-assign]
    tone = _tone(0.2)
    session.attach(peers.ArrayTrack(tone, end=True, stereo=True))
    await asyncio.wait_for(session.ended, timeout=5)
    await session.close()

    assert len(engine_in) == len(written) == len(encoded) == 10
    for block, (clean, raw), sent in zip(engine_in, written, encoded, strict=True):
        assert block.dtype == np.float32
        assert block.shape == (960,)
        assert raw is block  # the recorder's raw copy is the engine's input itself
        assert clean is sent  # and the encoder gets the engine's output as it came
    np.testing.assert_allclose(np.concatenate(engine_in), tone / 32768, atol=1e-4)


async def test_a_move_the_state_machine_does_not_allow_is_refused(make_session: Any) -> None:
    session, _, _ = make_session(FakeProcessor())
    with pytest.raises(TransitionError):
        session.go_live(session.resources)  # live already
    await session.close()
    assert session.state == "ended"
    with pytest.raises(TransitionError):
        session.abandon()
