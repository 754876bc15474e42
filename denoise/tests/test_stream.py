"""Denoiser: quality, timing, toggling, formats and lifetime."""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from denoise.exceptions import FormatError, FormatUnknownError, InvalidSettingError, StreamClosedError
from denoise.stream import Controls, Denoiser, MonoBlock, algorithmic_delay
from testing.frames import RATE, Int16, run, samples_of, stereo_frames, to_frames
from testing.quality import aligned, pesq_wb, stoi_score


@pytest.fixture(scope="module")
def denoised(noisy: Int16) -> tuple[np.ndarray, int, float | None]:
    """The whole noisy file through one Denoiser as aiortc-style frames: (output, delay, snr)."""
    with Denoiser() as den:
        out = samples_of(run(den, stereo_frames(noisy)))
        return out, den.delay_samples, den.snr_db


def test_quality_meets_the_bar(denoised: tuple[np.ndarray, int, float | None], noisy: Int16, clean: Int16):
    out, delay, _ = denoised
    assert np.array_equal(out[:, 0], out[:, 1])  # the mono result is copied to both channels
    ref, deg = aligned(clean / 32768.0, out[:, 0] / 32768.0, delay)
    assert pesq_wb(ref, deg, RATE) >= 2.85
    assert stoi_score(ref, deg, RATE) >= 0.96
    assert pesq_wb(ref, noisy[: len(ref)] / 32768.0, RATE) < 1.6


def test_delay_is_the_model_delay_for_aiortc_frames(denoised: tuple[np.ndarray, int, float | None]):
    out, delay, _ = denoised
    assert delay == 1440 == algorithmic_delay()
    assert not out[:delay].any()  # primed with silence, no start-up residue


def test_snr_is_reported(denoised: tuple[np.ndarray, int, float | None]):
    _, _, snr = denoised
    assert snr is not None
    assert -20.0 < snr < 40.0


def test_disabled_output_is_the_input_delayed(noisy: Int16):
    excerpt = noisy[RATE : 3 * RATE]
    with Denoiser(enabled=False) as den:
        out = samples_of(run(den, stereo_frames(excerpt)))
        delay = den.delay_samples
    expected = np.concatenate([np.zeros(delay, np.int16), excerpt])[: len(out)]
    assert np.abs(out[:, 0].astype(int) - expected).max() <= 1
    assert np.abs(out[:, 1].astype(int) - expected).max() <= 1


def _tone(seconds: int) -> Int16:
    """A slow, loud, wobbling tone: any hard switch between denoised and original shows up."""
    t = np.arange(seconds * RATE) / RATE
    return np.round(12000 * np.sin(2 * np.pi * 220 * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))).astype(
        np.int16
    )


@pytest.mark.parametrize("signal", ["speech", "tone"])
def test_toggling_every_200ms_never_clicks_or_moves(noisy: Int16, signal: str):
    excerpt = noisy[RATE : 4 * RATE] if signal == "speech" else _tone(3)
    outputs = []
    with Denoiser() as den:
        for i, frame in enumerate(stereo_frames(excerpt)):
            if i and i % 10 == 0:  # every 10 frames of 20 ms
                den.enabled = not den.enabled
            outputs.append(den.process(frame))
            assert den.delay_samples == 1440
    out = samples_of(outputs)[:, 0].astype(int)
    largest_input_jump = np.abs(np.diff(excerpt.astype(int))).max()
    # A hard switch on the tone jumps by ~9000; the 15 ms cross-fade stays within the input's own.
    assert np.abs(np.diff(out)).max() <= largest_input_jump + 64


@pytest.mark.parametrize(
    ("rate", "size", "layout", "fmt"),
    [(16_000, 320, "mono", "s16"), (44_100, 1024, "stereo", "fltp")],
    ids=["16k-mono-s16", "44k1-stereo-fltp"],
)
def test_other_formats_round_trip(noisy: Int16, rate: int, size: int, layout: str, fmt: str):
    mono = soxr.resample(noisy[: RATE * 3] / 32768.0, RATE, rate).astype(np.float32)
    source = mono if layout == "mono" else np.stack([mono, 0.5 * mono], axis=1)
    if fmt == "s16":
        source = np.round(source * 32767).astype(np.int16)
    frames = to_frames(source, rate, size, layout, fmt)
    with Denoiser() as den:
        outputs = run(den, frames)
        delay = den.delay_samples
    for frame, out in zip(frames, outputs, strict=True):
        assert (out.sample_rate, out.layout.name, out.format.name) == (rate, layout, fmt)
        assert (out.samples, out.pts, out.time_base) == (size, frame.pts, frame.time_base)
    result = samples_of(outputs)[:, 0].astype(np.float64)
    assert len(result) == len(frames) * size
    assert _lag(source.reshape(len(source), -1)[:, 0].astype(np.float64), result, delay) == delay


def _lag(reference: np.ndarray, output: np.ndarray, around: int) -> int:
    """The shift of `output` against `reference` (searched near `around`) that matches best."""
    span = slice(len(output) // 3, 2 * len(output) // 3)
    scores = {
        lag: float(np.dot(reference[span], output[span.start + lag : span.stop + lag]))
        for lag in range(around - 40, around + 41)
    }
    return max(scores, key=scores.__getitem__)


def test_controls_are_validated():
    with Denoiser(atten_lim_db=12) as den:
        den.atten_lim_db = 0
        den.atten_lim_db = 100.0
        for bad in (-1, 100.5, float("nan"), "6", None, True):
            with pytest.raises(InvalidSettingError):
                den.atten_lim_db = bad
        for bad in (1, "yes", None):
            with pytest.raises(InvalidSettingError):
                den.enabled = bad
        assert den.atten_lim_db == 100.0
    with pytest.raises(InvalidSettingError):
        Denoiser(atten_lim_db=101)


def test_attenuation_limit_changes_output_but_not_timing(noisy: Int16):
    frames = stereo_frames(noisy[RATE : 2 * RATE])
    with Denoiser() as den:
        full = samples_of(run(den, frames[:25]))
        den.atten_lim_db = 0
        light = samples_of(run(den, frames[25:]))
        assert den.delay_samples == 1440
    # With no attenuation the output is (nearly) the input, delayed: much louder than denoised.
    assert np.abs(light).mean() > 2 * np.abs(full[1440:]).mean()


def test_format_is_fixed_by_the_first_frame(noisy: Int16):
    with Denoiser() as den:
        with pytest.raises(FormatUnknownError):
            _ = den.delay_ms
        den.process(stereo_frames(noisy[:960])[0])
        assert den.delay_ms == 30.0
        with pytest.raises(FormatError):
            den.process(to_frames(noisy[:320], 16_000, 320, "mono")[0])


def test_closed_denoiser_refuses_frames(noisy: Int16):
    frame = stereo_frames(noisy[:960])[0]
    den = Denoiser()
    den.close()
    den.close()
    assert den.closed
    with pytest.raises(StreamClosedError):
        den.process(frame)


def test_mono_samples_match_mono_float_frames_and_follow_the_given_controls(noisy: Int16):
    """A MonoBlock is the frame path without the conversions: same output, sample for sample."""
    excerpt = (noisy[RATE : 2 * RATE] / 32768.0).astype(np.float32)
    frames = to_frames(excerpt, RATE, 960, "mono", "flt")
    half = len(frames) // 2
    with Denoiser(atten_lim_db=30.0) as by_frame, Denoiser() as by_samples:
        want = samples_of(run(by_frame, frames[:half]))[:, 0]
        got = [by_samples.process(MonoBlock(f.to_ndarray()[0], Controls(True, 30.0))) for f in frames[:half]]
        by_frame.enabled = False
        want = np.concatenate([want, samples_of(run(by_frame, frames[half:]))[:, 0]])
        got += [
            by_samples.process(MonoBlock(f.to_ndarray()[0], Controls(False, 30.0))) for f in frames[half:]
        ]
        assert by_samples.enabled is True  # its own controls were not used
    np.testing.assert_allclose(np.concatenate(got), want, atol=1e-6)


def test_checked_controls_refuse_wrong_types_and_ranges():
    assert Controls.checked(False, 40) == Controls(False, 40.0)
    for enabled, atten in ((1, 50.0), (True, -1.0), (True, "50"), (True, True)):
        with pytest.raises(InvalidSettingError):
            Controls.checked(enabled, atten)
