"""The Batcher: due frames of a worker's streams run as one engine call, each stream in order."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import av
import numpy as np
import pytest

from denoise.batched import BatchedDeepFilterNet3, BatchedState
from denoise.batcher import Batcher, Lane
from denoise.exceptions import FormatError
from denoise.stream import Denoiser
from testing.frames import RATE, read_int16, samples_of, stereo_frames, to_frames


class CountingEngine(BatchedDeepFilterNet3):
    """Records the batch size of every call."""

    def __init__(self, cache_dir: Path) -> None:
        super().__init__(cache_dir=cache_dir)
        self.batches: list[int] = []

    def process(self, states: Sequence[BatchedState], hops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.batches.append(len(states))
        return super().process(states, hops)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> CountingEngine:
    return CountingEngine(tmp_path_factory.mktemp("graph-cache"))


@pytest.fixture
def batcher(engine: CountingEngine) -> Iterator[Batcher]:
    batcher = Batcher(engine, workers=1)
    yield batcher
    batcher.shutdown()


@pytest.fixture(scope="module")
def excerpts() -> list[list[av.AudioFrame]]:
    noisy = read_int16("noisy_snr0.wav")
    return [stereo_frames(noisy[s : s + RATE]) for s in (0, RATE, 3 * RATE, 5 * RATE)]


def _alone(engine: BatchedDeepFilterNet3, frames: list[av.AudioFrame], **controls: float) -> np.ndarray:
    with Denoiser(engine=engine, **controls) as den:
        return samples_of([den.process(f) for f in frames]).astype(int)


def _held(batcher: Batcher) -> tuple[Lane, threading.Event]:
    """A lane whose worker is busy until the returned event is set: work queues up meanwhile."""
    gate = threading.Event()
    lane = batcher.lane()
    lane.submit(gate.wait, 10)
    return lane, gate


def test_frames_queued_on_a_worker_run_as_one_call_and_equal_each_stream_alone(
    batcher: Batcher, engine: CountingEngine, excerpts: list[list[av.AudioFrame]]
):
    _, gate = _held(batcher)
    lanes = [batcher.lane() for _ in excerpts]
    denoisers = [Denoiser(engine=engine, atten_lim_db=db) for db in (100, 12, 100, 30)]
    futures = [
        [lane.submit_frame(den, frame) for frame in frames]
        for lane, den, frames in zip(lanes, denoisers, excerpts, strict=True)
    ]
    engine.batches.clear()
    gate.set()
    results = [samples_of([f.result(timeout=30) for f in fs]).astype(int) for fs in futures]
    assert engine.batches[0] == len(excerpts)  # one frame of each stream, hop by hop
    assert max(engine.batches) == len(excerpts)
    for result, frames, db in zip(results, excerpts, (100, 12, 100, 30), strict=True):
        assert np.abs(result - _alone(engine, frames, atten_lim_db=db)).max() <= 1


def test_a_stream_keeps_its_order_and_its_calls_run_after_its_frames(
    batcher: Batcher, engine: CountingEngine, excerpts: list[list[av.AudioFrame]]
):
    lane = batcher.lane()
    den = Denoiser(engine=engine)
    frames = excerpts[1][:30]
    futures = [lane.submit_frame(den, frame) for frame in frames]
    seen: list[int] = []
    done = lane.submit(lambda: seen.extend(f.done() for f in futures))
    done.result(timeout=30)
    assert all(seen)
    assert [f.result().pts for f in futures] == [frame.pts for frame in frames]
    assert np.abs(samples_of([f.result() for f in futures]).astype(int) - _alone(engine, frames)).max() <= 1


def test_a_bad_frame_fails_alone(
    batcher: Batcher, engine: CountingEngine, excerpts: list[list[av.AudioFrame]]
):
    _, gate = _held(batcher)
    good, bad = batcher.lane(), batcher.lane()
    den_good, den_bad = Denoiser(engine=engine), Denoiser(engine=engine)
    bad.submit_frame(den_bad, excerpts[0][0])
    wrong_format = to_frames(np.zeros(320, np.int16), 16_000, 320, "mono")[0]
    failing = bad.submit_frame(den_bad, wrong_format)
    fine = [good.submit_frame(den_good, frame) for frame in excerpts[0][:2]]
    gate.set()
    with pytest.raises(FormatError):
        failing.result(timeout=30)
    assert all(f.result(timeout=30).samples == 960 for f in fine)


def test_streams_are_pinned_to_the_least_loaded_worker_and_release_their_slot(engine: CountingEngine):
    batcher = Batcher(engine, workers=2)
    try:
        first, second = batcher.lane(), batcher.lane()
        assert first._worker is not second._worker
        first.release()
        first.release()  # idempotent
        third = batcher.lane()
        assert third._worker is first._worker
        assert sorted(w.pinned for w in batcher._workers) == [1, 1]
    finally:
        batcher.shutdown()


def test_settings_change_between_frames(
    batcher: Batcher, engine: CountingEngine, excerpts: list[list[av.AudioFrame]]
):
    lane = batcher.lane()
    den = Denoiser(engine=engine)
    outputs = []
    for i, frame in enumerate(excerpts[2]):
        if i == 20:
            den.atten_lim_db = 6.0
        if i == 35:
            den.enabled = False
        outputs.append(lane.submit_frame(den, frame).result(timeout=30))
    with Denoiser(engine=engine) as alone:
        expected = []
        for i, frame in enumerate(excerpts[2]):
            if i == 20:
                alone.atten_lim_db = 6.0
            if i == 35:
                alone.enabled = False
            expected.append(alone.process(frame))
    assert np.abs(samples_of(outputs).astype(int) - samples_of(expected).astype(int)).max() <= 1
