"""`DirectCodec`: the frame conversions of the common live case in numpy, without swresample.

A stream already at the model's rate in mono or stereo, 16-bit or float samples (what aiortc
hands a server track: 48 kHz packed s16 stereo) needs no resampling, only re-layout, which four
FFmpeg resampler calls a frame did at ~15% of a batched frame's CPU. The arithmetic is FFmpeg's
(measured against PyAV 18): s16 <-> float scales by 2^15 with round-to-even and clipping, and
the stereo down-/up-mix weighs each channel by sqrt(1/2). Other formats use `FrameCodec`.
"""

from __future__ import annotations

import math
from fractions import Fraction

import av
import numpy as np

from denoise.audio import FrameCodec, FrameFormat, Mono, Planar

FORMATS = {"s16", "s16p", "flt", "fltp"}
LAYOUTS = {"mono": 1, "stereo": 2}
_MIX = np.float32(math.sqrt(0.5))
_S16 = np.float32(32768.0)


def codec_for(fmt: FrameFormat, model_rate: int) -> FrameCodec | DirectCodec:
    """The cheapest codec that converts `fmt` exactly like FFmpeg would."""
    if fmt.sample_rate == model_rate and fmt.format in FORMATS and fmt.layout in LAYOUTS:
        return DirectCodec(fmt, model_rate)
    return FrameCodec(fmt, model_rate)


class DirectCodec:
    """Same interface as FrameCodec, for formats in FORMATS/LAYOUTS at the model's rate."""

    resampled = False

    def __init__(self, fmt: FrameFormat, model_rate: int) -> None:
        self.fmt = fmt
        self.model_rate = model_rate
        self._planar_format = fmt.format.endswith("p")
        self._int = fmt.format.startswith("s16")

    def planar(self, frame: av.AudioFrame) -> Planar:
        """The frame's samples as float32, shape (channels, samples)."""
        data = frame.to_ndarray()
        if not self._planar_format:
            data = data.reshape(-1, self.fmt.channels).T
        if self._int:
            return data.astype(np.float32) / _S16
        return np.ascontiguousarray(data, dtype=np.float32)

    def model_input(self, frame: av.AudioFrame) -> Mono:
        """The frame down-mixed to mono (FFmpeg's weights)."""
        planar = self.planar(frame)
        if self.fmt.channels == 1:
            return planar[0]
        return planar[0] * _MIX + planar[1] * _MIX

    def from_model(self, samples: Mono) -> Planar:
        """Model output copied to the stream's channels (FFmpeg's up-mix weights)."""
        mono = np.asarray(samples, np.float32)
        if self.fmt.channels == 1:
            return mono.reshape(1, -1)
        return np.repeat((mono * _MIX)[None], 2, axis=0)

    def frame(self, samples: Planar, pts: int | None, time_base: Fraction | None) -> av.AudioFrame:
        """Planar float32 samples as a frame in the stream's format, carrying pts/time_base."""
        data: np.ndarray = samples
        if self._int:
            data = np.clip(np.rint(samples * _S16), -32768, 32767).astype(np.int16)
        if not self._planar_format:
            data = data.T.reshape(1, -1)
        out = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(data), format=self.fmt.format, layout=self.fmt.layout
        )
        out.sample_rate = self.fmt.sample_rate
        out.pts = pts
        out.time_base = time_base if time_base is not None else Fraction(1, self.fmt.sample_rate)
        return out
