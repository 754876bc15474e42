"""BatchedDeepFilterNet3 against libDF (the reference): output, quality, batching and controls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from denoise.batched import BatchedDeepFilterNet3
from denoise.engine import DeepFilterNet3, EngineState
from denoise.exceptions import InvalidSettingError, StreamClosedError
from denoise.stream import Denoiser
from testing.frames import RATE, Int16, samples_of, stereo_frames
from testing.quality import aligned, pesq_wb, stoi_score

HOP = 480
TOLERANCE = 1e-4  # max |diff| against libDF, in full-scale units


@pytest.fixture(scope="module")
def batched(tmp_path_factory: pytest.TempPathFactory) -> BatchedDeepFilterNet3:
    return BatchedDeepFilterNet3(cache_dir=tmp_path_factory.mktemp("graph-cache"))


@pytest.fixture(scope="module")
def libdf() -> DeepFilterNet3:
    return DeepFilterNet3()


def hops_of(samples: np.ndarray) -> np.ndarray:
    signal = np.asarray(samples, np.float32) / (32768.0 if samples.dtype == np.int16 else 1.0)
    count = len(signal) // HOP
    return signal[: count * HOP].reshape(count, HOP)


def through(state: EngineState, hops: np.ndarray, limits: dict[int, float] | None = None) -> np.ndarray:
    """Every hop through one engine state; `limits` maps a hop index to a new limit in dB."""
    out = []
    for i, hop in enumerate(hops):
        if limits and i in limits:
            state.set_atten_lim(limits[i])
        out.append(state.process_hop(hop)[0])
    state.close()
    return np.concatenate(out)


@pytest.fixture(scope="module")
def noisy_hops(noisy: Int16) -> np.ndarray:
    return hops_of(noisy)


@pytest.fixture(scope="module")
def reference(libdf: DeepFilterNet3, noisy_hops: np.ndarray) -> np.ndarray:
    return through(libdf.open(), noisy_hops)


def test_output_equals_libdf_on_the_noisy_file(
    batched: BatchedDeepFilterNet3, noisy_hops: np.ndarray, reference: np.ndarray, clean: Int16
):
    out = through(batched.open(), noisy_hops)
    assert batched.delay_samples == DeepFilterNet3.delay_samples
    assert np.abs(out - reference).max() <= TOLERANCE
    assert np.abs(reference).max() > 0.1  # a real signal, not two silences
    ref, deg = aligned(clean / 32768.0, out, batched.delay_samples)
    assert pesq_wb(ref, deg, RATE) >= 2.85
    assert stoi_score(ref, deg, RATE) >= 0.96


def test_local_snr_equals_libdf(
    batched: BatchedDeepFilterNet3, libdf: DeepFilterNet3, noisy_hops: np.ndarray
):
    ours, theirs = batched.open(), libdf.open()
    ours_snr = [ours.process_hop(hop)[1] for hop in noisy_hops[:300]]
    theirs_snr = [theirs.process_hop(hop)[1] for hop in noisy_hops[:300]]
    theirs.close()
    assert np.abs(np.array(ours_snr) - np.array(theirs_snr)).max() < 1e-3
    assert np.ptp(ours_snr) > 10.0  # the estimate moves with the speech


def test_streams_joining_and_leaving_a_batch_match_each_stream_alone(
    batched: BatchedDeepFilterNet3, noisy_hops: np.ndarray
):
    # Four streams on different parts of the file, each present for a different span of calls.
    spans = {0: (0, 300), 1: (40, 220), 2: (100, 300), 3: (150, 180)}
    offsets = {0: 0, 1: 300, 2: 500, 3: 800}
    states = {k: batched.open(atten_lim_db=100 if k % 2 else 12) for k in spans}
    outputs: dict[int, list[np.ndarray]] = {k: [] for k in spans}
    for step in range(300):
        members = [k for k, (start, end) in spans.items() if start <= step < end]
        hops = np.stack([noisy_hops[offsets[k] + step - spans[k][0]] for k in members])
        out, _ = batched.process([states[k] for k in members], hops)
        for row, k in enumerate(members):
            outputs[k].append(out[row])
    for k, (start, end) in spans.items():
        alone = through(
            batched.open(atten_lim_db=100 if k % 2 else 12), noisy_hops[offsets[k] : offsets[k] + end - start]
        )
        assert np.abs(np.concatenate(outputs[k]) - alone).max() <= 1e-6


@pytest.mark.parametrize(
    "limits", [{0: 6.0}, {0: 100.0, 150: 20.0, 300: 0.0, 400: 100.0}], ids=["6dB", "changes"]
)
def test_attenuation_limit_equals_libdf(
    batched: BatchedDeepFilterNet3, libdf: DeepFilterNet3, noisy_hops: np.ndarray, limits: dict[int, float]
):
    hops = noisy_hops[:500]
    ours = through(batched.open(), hops, limits)
    theirs = through(libdf.open(), hops, limits)
    assert np.abs(ours - theirs).max() <= TOLERANCE
    full = through(batched.open(), hops)
    assert not np.allclose(ours, full, atol=1e-3)  # the limit does change the output


def test_on_off_toggle_through_a_denoiser_equals_libdf(
    batched: BatchedDeepFilterNet3, libdf: DeepFilterNet3, noisy: Int16
):
    frames = stereo_frames(noisy[RATE : 4 * RATE])
    results = []
    for engine in (batched, libdf):
        outputs = []
        with Denoiser(engine=engine) as den:
            for i, frame in enumerate(frames):
                if i and i % 10 == 0:
                    den.enabled = not den.enabled
                outputs.append(den.process(frame))
        results.append(samples_of(outputs).astype(int))
    assert np.abs(results[0] - results[1]).max() <= 4  # 1e-4 of full scale is 3.3 LSB


def test_silence_in_gives_silence_out(batched: BatchedDeepFilterNet3):
    state = batched.open()
    out = through(state, np.zeros((200, HOP), np.float32))
    assert not out.any()


def test_noise_after_digital_silence_equals_libdf(
    batched: BatchedDeepFilterNet3, libdf: DeepFilterNet3, noisy_hops: np.ndarray
):
    hops = np.concatenate([noisy_hops[:200], np.zeros((100, HOP), np.float32), noisy_hops[200:400]])
    assert np.abs(through(batched.open(), hops) - through(libdf.open(), hops)).max() <= TOLERANCE


def test_state_checks_input_settings_and_lifetime(batched: BatchedDeepFilterNet3):
    state = batched.open()
    with pytest.raises(ValueError, match="480"):
        state.process_hop(np.zeros(100, np.float32))
    with pytest.raises(InvalidSettingError):
        state.set_atten_lim(-3)
    with pytest.raises(InvalidSettingError):
        batched.open(atten_lim_db=101)
    with pytest.raises(ValueError, match="hops must be"):
        batched.process([state], np.zeros((2, HOP), np.float32))
    state.close()
    state.close()
    with pytest.raises(StreamClosedError):
        state.process_hop(np.zeros(HOP, np.float32))
    with pytest.raises(StreamClosedError):
        state.set_atten_lim(10)


def test_a_stream_state_is_small(batched: BatchedDeepFilterNet3):
    assert 20_000 < batched.bank.row_bytes < 64_000  # about 46 KB: DSP memories, GRU and conv states


def test_a_closed_streams_row_is_reused_fresh(batched: BatchedDeepFilterNet3, noisy_hops: np.ndarray):
    used = batched.open()
    row = used.slot.row
    through(used, noisy_hops[:50])  # closes it: its row, full of state, goes back to the bank
    again = batched.open()
    assert again.slot.row == row
    fresh = through(again, noisy_hops[:80])
    assert np.abs(fresh - through(batched.open(), noisy_hops[:80])).max() <= 1e-6


def test_engine_builds_from_an_empty_cache_without_network(tmp_path: Path):
    engine = BatchedDeepFilterNet3(cache_dir=tmp_path / "fresh")
    assert len(list((tmp_path / "fresh").iterdir())) == 1
    out, snr = engine.open().process_hop(np.zeros(HOP, np.float32))
    assert out.shape == (HOP,)
    assert isinstance(snr, float)
