"""DirectCodec converts exactly as FFmpeg's resampler (FrameCodec) does, for the formats it takes."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from denoise.audio import FrameCodec, FrameFormat
from denoise.codec import DirectCodec, codec_for
from testing.frames import RATE, to_frames


@pytest.mark.parametrize("layout", ["mono", "stereo"])
@pytest.mark.parametrize("fmt", ["s16", "s16p", "flt", "fltp"])
def test_direct_conversions_equal_ffmpegs(fmt: str, layout: str):
    channels = 1 if layout == "mono" else 2
    rng = np.random.default_rng(3)
    signal = 0.4 * rng.standard_normal((960, channels))
    signal[:4, 0] = [1.5, -1.5, 0.5 / 32768, 2.5 / 32768]  # clipping and rounding ties
    source = (
        np.round(signal * 32767).clip(-32768, 32767).astype(np.int16) if fmt.startswith("s16") else signal
    )
    frame = to_frames(
        source.astype(np.float32) if not fmt.startswith("s16") else source, RATE, 960, layout, fmt
    )[0]
    spec = FrameFormat.of(frame)
    direct, ffmpeg = codec_for(spec, RATE), FrameCodec(spec, RATE)
    assert isinstance(direct, DirectCodec)
    assert np.array_equal(direct.planar(frame), ffmpeg.planar(frame))
    assert np.abs(direct.model_input(frame) - ffmpeg.model_input(frame)).max() < 1e-6
    mono = (0.3 * rng.standard_normal(960)).astype(np.float32)
    assert np.abs(direct.from_model(mono) - ffmpeg.from_model(mono)).max() < 1e-6
    planar = signal.T.astype(np.float32)
    ours, theirs = direct.frame(planar, 960, Fraction(1, RATE)), ffmpeg.frame(planar, 960, Fraction(1, RATE))
    assert (ours.format.name, ours.layout.name, ours.samples, ours.pts) == (fmt, layout, 960, 960)
    assert np.abs(ours.to_ndarray().astype(float) - theirs.to_ndarray().astype(float)).max() <= 1e-6


def test_other_rates_and_layouts_go_through_ffmpeg():
    assert isinstance(codec_for(FrameFormat(16_000, "mono", "s16", 320, 1), RATE), FrameCodec)
    assert isinstance(codec_for(FrameFormat(RATE, "5.1", "fltp", 960, 6), RATE), FrameCodec)
