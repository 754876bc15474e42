"""Audio format conversion: PyAV frames <-> float32 sample arrays, plus a small sample FIFO.

All resampling, re-layout and sample-format conversion goes through FFmpeg's swresample (PyAV's
AudioResampler). Measured on PyAV 18: its output is time-aligned with its input (no signal delay)
and it holds back a constant 16 input samples (half its 32-tap filter) until more input arrives.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
import numpy.typing as npt
from av.audio.resampler import AudioResampler

from denoise.exceptions import FormatError, InputError

Planar = npt.NDArray[np.float32]  # shape (channels, samples)
Mono = npt.NDArray[np.float32]  # shape (samples,)

# Upper bound on swresample's hold-back, in input samples (16 measured; margin for rounding).
RESAMPLER_HOLDBACK = 32


@dataclass(frozen=True, slots=True)
class FrameFormat:
    """What identifies a stream's frames: the rate, layout, sample format and frame size."""

    sample_rate: int
    layout: str
    format: str
    samples: int
    channels: int

    @classmethod
    def of(cls, frame: av.AudioFrame) -> FrameFormat:
        if not frame.sample_rate or frame.samples <= 0:
            raise FormatError("an audio frame needs a sample rate and at least one sample")
        layout = frame.layout
        return cls(frame.sample_rate, layout.name, frame.format.name, frame.samples, layout.nb_channels)

    def __str__(self) -> str:
        return f"{self.samples} samples {self.format} {self.layout} @ {self.sample_rate} Hz"


class SampleFifo:
    """First-in first-out queue of planar float32 samples, optionally primed with silence."""

    def __init__(self, channels: int, primed: int = 0) -> None:
        self._channels = channels
        self._chunks: list[Planar] = [np.zeros((channels, primed), dtype=np.float32)] if primed else []
        self._size = primed

    def __len__(self) -> int:
        return self._size

    def push(self, samples: Planar) -> None:
        if samples.shape[1]:
            self._chunks.append(samples)
            self._size += samples.shape[1]

    def pop(self, count: int) -> Planar:
        """Remove and return the oldest `count` samples; the caller checks `len()` first."""
        if count > self._size:
            raise ValueError(f"FIFO holds {self._size} samples, {count} requested")
        joined = np.concatenate(self._chunks, axis=1) if len(self._chunks) != 1 else self._chunks[0]
        head, rest = joined[:, :count], joined[:, count:]
        self._chunks = [rest] if rest.shape[1] else []
        self._size -= count
        return head


class FrameCodec:
    """Converts one stream's frames to and from the arrays the denoiser works on.

    The stream side keeps the frames' own rate and layout as planar float32; the model side is
    mono float32 at the model's rate. Each direction keeps its own resampler (they are stateful).
    """

    def __init__(self, fmt: FrameFormat, model_rate: int) -> None:
        self.fmt = fmt
        self.model_rate = model_rate
        self._to_planar = AudioResampler(format="fltp", layout=fmt.layout, rate=fmt.sample_rate)
        self._to_model = AudioResampler(format="flt", layout="mono", rate=model_rate)
        self._from_model = AudioResampler(format="fltp", layout=fmt.layout, rate=fmt.sample_rate)
        self._to_frame = AudioResampler(format=fmt.format, layout=fmt.layout, rate=fmt.sample_rate)

    @property
    def resampled(self) -> bool:
        return self.fmt.sample_rate != self.model_rate

    def planar(self, frame: av.AudioFrame) -> Planar:
        """The frame's samples as float32, shape (channels, samples), same rate and layout."""
        return _joined(_resample(self._to_planar, frame), self.fmt.channels)

    def model_input(self, frame: av.AudioFrame) -> Mono:
        """The frame down-mixed to mono at the model's rate (may be shorter while resampling)."""
        return _joined(_resample(self._to_model, frame), 1)[0]

    def from_model(self, samples: Mono) -> Planar:
        """Model output back at the stream's rate, duplicated to the stream's channels."""
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = self.model_rate
        return _joined(_resample(self._from_model, frame), self.fmt.channels)

    def frame(self, samples: Planar, pts: int | None, time_base: Fraction | None) -> av.AudioFrame:
        """Planar float32 samples as a frame in the stream's own format, carrying pts/time_base."""
        planar = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples), format="fltp", layout=self.fmt.layout
        )
        planar.sample_rate = self.fmt.sample_rate
        frames = _resample(self._to_frame, planar)
        if len(frames) != 1 or frames[0].samples != samples.shape[1]:
            raise FormatError(f"could not convert samples back to {self.fmt}")
        out = frames[0]
        out.pts = pts
        if time_base is not None:  # PyAV can't unset it; the resampler's 1/rate stands then
            out.time_base = time_base
        return out


def _resample(resampler: AudioResampler, frame: av.AudioFrame) -> list[av.AudioFrame]:
    try:
        return resampler.resample(frame)
    except av.error.FFmpegError as exc:  # e.g. a layout with unknown channel order can't be mixed
        raise FormatError(f"cannot convert {frame.layout.name} {frame.format.name} audio: {exc}") from exc


def _joined(frames: list[av.AudioFrame], channels: int) -> Planar:
    arrays = [f.to_ndarray() for f in frames]
    if not arrays:
        return np.zeros((channels, 0), dtype=np.float32)
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=1)


def stream_lag(fmt: FrameFormat, model_rate: int, hop_size: int) -> int:
    """Silence to prime the output with (stream samples) so every frame can be answered in full.

    The output runs short by whatever input is still waiting: a partial model hop, and, when the
    rate differs, the two resamplers' hold-back. Frames covering whole hops need no priming.
    """
    if fmt.sample_rate == model_rate:
        return 0 if fmt.samples % hop_size == 0 else hop_size - math.gcd(fmt.samples, hop_size)
    waiting_model = hop_size - 1 + RESAMPLER_HOLDBACK
    return RESAMPLER_HOLDBACK + math.ceil(waiting_model * fmt.sample_rate / model_rate) + 1


def default_layout(channels: int) -> str:
    """FFmpeg's usual layout for a channel count (files often leave the channel order unnamed)."""
    names = ("mono", "stereo", "2.1", "quad", "5.0", "5.1", "6.1", "7.1")
    if not 1 <= channels <= len(names):
        raise InputError(f"unsupported channel count: {channels}")
    return names[channels - 1]


class AudioFile:
    """An input file's first audio stream, decoded into frames of one fixed size and format.

    Frames are packed `s16` when the source has at most 16 bits per sample, else packed `flt`.
    The last frame is padded with silence; `samples` counts the real samples read so far.
    Raises InputError when the file is missing, not audio, undecodable or holds no samples.
    """

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise InputError(f"input file not found: {path}")
        if not path.is_file():
            raise InputError(f"input is not a file: {path}")
        try:
            self._container = av.open(os.fspath(path), mode="r")
        except (av.error.FFmpegError, OSError) as exc:
            raise InputError(f"not an audio file: {path}") from exc
        self.path = path
        self.samples = 0
        try:
            self._decoded = self._decode()
            first = next(self._decoded, None)
        except InputError:
            self.close()
            raise
        if first is None:
            self.close()
            raise InputError(f"input has no audio samples: {path}")
        self._first: av.AudioFrame | None = first
        self.sample_rate: int = first.sample_rate
        self.channels: int = first.layout.nb_channels
        self.format = "s16" if first.format.bits <= 16 else "flt"
        duration = self._container.duration  # microseconds, when the container knows it
        self.estimated_samples = round(duration * self.sample_rate / 1e6) if duration else None

    def _decode(self) -> Iterator[av.AudioFrame]:
        if not self._container.streams.audio:
            raise InputError(f"no audio stream in {self.path}")
        try:
            for frame in self._container.decode(self._container.streams.audio[0]):
                if frame.samples:
                    yield frame
        except av.error.FFmpegError as exc:
            raise InputError(f"cannot decode {self.path}: {exc}") from exc

    def frames(self, size: int) -> Iterator[av.AudioFrame]:
        """Frames of exactly `size` samples in this file's rate and default channel layout."""
        layout = default_layout(self.channels)
        resampler = AudioResampler(format=self.format, layout=layout, rate=self.sample_rate)
        fifo = av.AudioFifo()
        first, self._first = self._first, None
        decoded = itertools.chain([first] if first is not None else [], self._decoded)
        for frame in decoded:
            frame.pts = None  # the FIFO would reject gaps in the source's timestamps
            for converted in _resample(resampler, frame):
                fifo.write(converted)
            while fifo.samples >= size:
                self.samples += size
                yield fifo.read(size)
        if fifo.samples:
            tail = fifo.read(fifo.samples)
            self.samples += tail.samples
            yield _padded(tail, size, layout)

    def close(self) -> None:
        self._container.close()


def _padded(frame: av.AudioFrame, size: int, layout: str) -> av.AudioFrame:
    """The frame (packed format) extended with silence to `size` samples."""
    data = frame.to_ndarray()
    padded = np.zeros((1, size * data.shape[1] // frame.samples), dtype=data.dtype)
    padded[:, : data.shape[1]] = data
    out = av.AudioFrame.from_ndarray(padded, format=frame.format.name, layout=layout)
    out.sample_rate = frame.sample_rate
    return out
