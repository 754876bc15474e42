"""Test audio for the recording tests (20 ms frames whose sample values tell where they belong)
and a clock the tests move by hand."""

from __future__ import annotations

import av
import numpy as np

FRAME = 960  # 20 ms at 48 kHz, what aiortc's Opus decoder hands over


def ramp(index: int, n: int = FRAME) -> np.ndarray:
    """Sample values that identify their position, so content checks catch reordering or loss."""
    return (np.arange(index * n, (index + 1) * n) % 30000).astype(np.int16)


def stereo_frame(mono: np.ndarray) -> av.AudioFrame:
    """An aiortc-like frame: s16 packed stereo, both channels carrying the same signal."""
    frame = av.AudioFrame.from_ndarray(np.repeat(mono, 2)[np.newaxis, :], format="s16", layout="stereo")
    frame.sample_rate = 48000
    return frame


class FakeClock:
    """A monotonic clock that only moves when a test sets `now`."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now
