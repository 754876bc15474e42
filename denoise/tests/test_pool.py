"""The asyncio adapter: streams run in parallel on the pool, each stream strictly in order."""

from __future__ import annotations

import asyncio
import threading

import av
import numpy as np
import pytest

from denoise.engine import ATTEN_LIM_MAX_DB, DeepFilterNet3, DfState, Engine
from denoise.exceptions import EngineError, InvalidSettingError, StreamClosedError
from denoise.pool import ENGINES, AudioProcessor, ProcessorPool
from denoise.stream import Controls, Denoiser
from testing.frames import RATE, read_int16, samples_of, stereo_frames, to_frames
from testing.peers import wait_for

SECONDS = 1.5


@pytest.fixture(scope="module")
def streams() -> list[list[av.AudioFrame]]:
    """Four different excerpts of the noisy speech, as aiortc-style frames."""
    noisy = read_int16("noisy_snr0.wav")
    length = int(SECONDS * RATE)
    return [stereo_frames(noisy[start : start + length]) for start in (0, 2 * RATE, 4 * RATE, 6 * RATE)]


def _sequential(frames: list[av.AudioFrame], engine: Engine) -> np.ndarray:
    with Denoiser(engine=engine) as den:
        return samples_of([den.process(frame) for frame in frames])


def _same(result: np.ndarray, expected: np.ndarray) -> bool:
    # A batch of other size may round a float differently: allow one LSB of the s16 output.
    return result.shape == expected.shape and int(np.abs(result.astype(int) - expected).max()) <= 1


async def _feed(processor: AudioProcessor, frames: list[av.AudioFrame]) -> np.ndarray:
    outputs = [await processor.process(frame) for frame in frames]
    processor.close()
    return samples_of(outputs)


@pytest.mark.parametrize("engine", ["batched", "libdf"])
async def test_parallel_streams_match_sequential_processing(
    streams: list[list[av.AudioFrame]], engine: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("DENOISE_ENGINE", engine)
    async with ProcessorPool() as pool:
        assert isinstance(pool.engine, ENGINES[engine])
        results = await asyncio.gather(*(_feed(pool.open(), frames) for frames in streams))
    for frames, result in zip(streams, results, strict=True):
        assert _same(result, _sequential(frames, pool.engine))


async def test_concurrent_calls_on_one_stream_keep_their_order(streams: list[list[av.AudioFrame]]):
    frames = streams[1]
    async with ProcessorPool(workers=2) as pool:
        processor = pool.open()
        outputs = await asyncio.gather(*(processor.process(frame) for frame in frames))
    assert [out.pts for out in outputs] == [frame.pts for frame in frames]
    assert _same(samples_of(list(outputs)), _sequential(frames, pool.engine))


async def test_pool_starts_lazily_and_stops_with_its_last_user(streams: list[list[av.AudioFrame]]):
    pool = ProcessorPool(engine_factory=DeepFilterNet3)
    assert not pool.running
    first, second = pool.open(), pool.open()
    assert first.denoiser is None  # libDF's model loads on the pool: open() did not wait for it
    assert pool.running
    await first.process(streams[0][0])
    first.close()
    first.close()
    assert pool.running
    second.close()
    assert not pool.running
    third = pool.open()
    assert pool.running
    await pool.aclose()
    assert third.closed
    assert not pool.running
    with pytest.raises(StreamClosedError):
        pool.open()
    with pytest.raises(StreamClosedError):
        await third.process(streams[0][0])


async def test_stopped_pools_are_forgotten_once_their_work_is_done(streams: list[list[av.AudioFrame]]):
    async with ProcessorPool() as pool:
        for _ in range(3):  # a server's streams come and go for months
            processor = pool.open()
            await processor.process(streams[0][0])
            processor.close()
        await wait_for(lambda: not pool._retired, timeout=10)


async def test_controls_are_validated_and_applied(streams: list[list[av.AudioFrame]]):
    frames = streams[2][:20]
    async with ProcessorPool() as pool:
        processor = pool.open(enabled=False)
        with pytest.raises(InvalidSettingError):
            processor.atten_lim_db = 120
        with pytest.raises(InvalidSettingError):
            processor.enabled = "no"
        with pytest.raises(InvalidSettingError):
            pool.open(atten_lim_db=-1)
        out = samples_of([await processor.process(frame) for frame in frames])
        denoiser = processor.denoiser
        assert denoiser is not None
        assert denoiser.delay_samples == 1440
        assert processor.snr_db is not None
    expected = samples_of(frames)[: len(out) - 1440]
    assert np.array_equal(out[1440:], expected)  # disabled: the input, delayed


class GatedEngine(DeepFilterNet3):
    """DeepFilterNet3 whose model load waits for the test to open the gate (or fails)."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.fail = fail

    def open(self, atten_lim_db: float = ATTEN_LIM_MAX_DB) -> DfState:
        self.gate.wait(timeout=30)
        if self.fail:
            raise OSError("model file unreadable")
        return super().open(atten_lim_db)


async def test_ready_waits_for_the_load_and_a_timeout_does_not_cancel_it(
    streams: list[list[av.AudioFrame]],
):
    engine = GatedEngine()
    async with ProcessorPool(engine_factory=lambda: engine) as pool:
        processor = pool.open()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await processor.ready()
        engine.gate.set()
        assert await processor.ready() is True
        assert processor.denoiser is not None
        await processor.process(streams[0][0])
        processor.close()
        assert await processor.ready() is False  # closed


async def test_ready_reports_a_failed_load_which_process_raises(streams: list[list[av.AudioFrame]]):
    engine = GatedEngine(fail=True)
    engine.gate.set()
    async with ProcessorPool(engine_factory=lambda: engine) as pool:
        processor = pool.open()
        assert await processor.ready() is False
        with pytest.raises(OSError, match="unreadable"):
            await processor.process(streams[0][0])
        processor.close()


async def test_an_unknown_engine_name_is_refused_at_open(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DENOISE_ENGINE", "tensorflow")
    async with ProcessorPool() as pool:
        with pytest.raises(EngineError, match="DENOISE_ENGINE"):
            pool.open()


@pytest.mark.parametrize("engine", ["batched", "libdf"])
async def test_process_samples_then_runs_the_follow_up_on_the_worker_in_order(
    streams: list[list[av.AudioFrame]], engine: str, monkeypatch: pytest.MonkeyPatch
):
    """process_samples_then(x, f) is f(process_samples(x)), with f run off the event loop's thread
    in the stream's order (the live path's Opus encode rides the engine's worker)."""
    monkeypatch.setenv("DENOISE_ENGINE", engine)
    mono = samples_of(streams[0])[:, 0].astype(np.float32) / 32768
    blocks = mono[: 960 * (mono.size // 960)].reshape(-1, 960)[:20]
    loop_thread = threading.get_ident()
    seen: list[tuple[int, int]] = []

    def then(clean: np.ndarray) -> tuple[int, np.ndarray]:
        seen.append((threading.get_ident(), len(seen)))
        return len(seen) - 1, clean * 2

    async with ProcessorPool() as pool:
        plain, chained = pool.open(atten_lim_db=40.0), pool.open(atten_lim_db=40.0)
        for i, block in enumerate(blocks):
            want = await plain.process_samples(block)
            index, got = await chained.process_samples_then(block, then)
            assert index == i
            np.testing.assert_allclose(got, want * 2, atol=1e-6)
        plain.close()
        chained.close()
    assert [n for _, n in seen] == list(range(len(blocks)))
    assert all(thread != loop_thread for thread, _ in seen)


@pytest.mark.parametrize("engine", ["batched", "libdf"])
async def test_mono_samples_match_the_frame_path_and_follow_the_controls(
    streams: list[list[av.AudioFrame]], engine: str, monkeypatch: pytest.MonkeyPatch
):
    """process_samples (a live stream's mono float32 blocks) is process() without conversions."""
    monkeypatch.setenv("DENOISE_ENGINE", engine)
    mono = samples_of(streams[0])[:, 0].astype(np.float32) / 32768
    frames = to_frames(mono, RATE, 960, "mono", "flt")
    async with ProcessorPool() as pool:
        by_frame, by_samples = pool.open(atten_lim_db=40.0), pool.open(atten_lim_db=40.0)
        assert by_samples.delay_s == pytest.approx(0.03)
        want, got = [], []
        for i, frame in enumerate(frames):
            if i == len(frames) // 2:  # the controls change half-way, as one value
                by_frame.enabled = False
                by_samples.controls = Controls(False, 40.0)
            want.append((await by_frame.process(frame)).to_ndarray()[0])
            got.append(await by_samples.process_samples(frame.to_ndarray()[0]))
        by_frame.close()
        by_samples.close()
    np.testing.assert_allclose(np.concatenate(got), np.concatenate(want), atol=1e-5)
