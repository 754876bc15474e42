"""The pipeline's entry: any frame to the live path's one format, level-neutral, in 20 ms blocks."""

from __future__ import annotations

import numpy as np

from streams.live.pipeline import EntryConverter
from testing.frames import to_frames


def _tone(rate: int, seconds: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return 0.5 * np.sin(2 * np.pi * 440 * t)


def test_aiortc_frames_become_one_block_each_the_channels_average() -> None:
    left = (_tone(48_000, 0.1) * 32767).astype(np.int16)
    right = (left // 2).astype(np.int16)
    frames = to_frames(np.stack([left, right], axis=1), 48_000, 960, "stereo")
    entry = EntryConverter()
    blocks = [entry.convert(f) for f in frames]
    assert [len(b) for b in blocks] == [1] * 5
    out = np.concatenate([b[0] for b in blocks])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, (left.astype(np.float64) + right) / 2 / 32768, atol=1e-6)


def test_other_rates_formats_and_sizes_are_resampled_into_960_sample_blocks_at_the_same_level() -> None:
    tone = _tone(44_100, 1.0).astype(np.float32)
    frames = to_frames(np.stack([tone, tone], axis=1), 44_100, 441, "stereo", "flt")
    entry = EntryConverter()
    blocks = [block for f in frames for block in entry.convert(f)]
    assert {len(b) for b in blocks} == {960}
    assert len(blocks) >= 48  # 1 s at 48 kHz, but for the resampler's short hold-back
    out = np.concatenate(blocks)[4800:]  # past the resampler's start-up
    level = np.sqrt(np.mean(out**2)) / np.sqrt(np.mean(tone**2))
    assert abs(level - 1) < 0.01  # no 3 dB from FFmpeg's float down-mix
