"""Test audio and frame plumbing: cutting samples into av frames and back."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import soundfile as sf

from denoise.stream import Denoiser

DATA = Path(__file__).resolve().parents[1] / "denoise" / "tests" / "data"
RATE = 48_000

Int16 = npt.NDArray[np.int16]


def read_int16(name: str) -> Int16:
    samples, rate = sf.read(DATA / name, dtype="int16")
    if rate != RATE:
        raise ValueError(f"{name}: expected {RATE} Hz, got {rate}")
    return samples


def to_frames(
    samples: npt.NDArray[np.generic], rate: int, size: int, layout: str, fmt: str = "s16"
) -> list[av.AudioFrame]:
    """Cut (n,) or (n, channels) samples into whole frames of `size`, with pts in 1/rate."""
    data = samples.reshape(len(samples), -1)
    frames = []
    for start in range(0, len(data) - size + 1, size):
        chunk = data[start : start + size]
        array = chunk.T.copy() if av.AudioFormat(fmt).is_planar else chunk.reshape(1, -1).copy()
        frame = av.AudioFrame.from_ndarray(array, format=fmt, layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        frames.append(frame)
    return frames


def stereo_frames(mono: Int16, size: int = 960) -> list[av.AudioFrame]:
    """What aiortc hands a server track: packed s16 stereo, 48 kHz."""
    return to_frames(np.repeat(mono[:, None], 2, axis=1), RATE, size, "stereo")


def samples_of(frames: list[av.AudioFrame]) -> npt.NDArray[np.generic]:
    """Frames back to one (n, channels) array."""
    parts = []
    for frame in frames:
        array = frame.to_ndarray()
        channels = frame.layout.nb_channels
        parts.append(array.T if frame.format.is_planar else array.reshape(-1, channels))
    return np.concatenate(parts)


def run(denoiser: Denoiser, frames: list[av.AudioFrame]) -> list[av.AudioFrame]:
    return [denoiser.process(frame) for frame in frames]
