"""`Denoiser`: one audio stream's denoising, frame in -> frame out, with live controls.

Each input frame yields exactly one output frame of the same format, size, pts and time base.
The output lags the input by a constant `delay_samples`: the model's own delay plus silence
primed into the output so that partial hops never leave a frame short. The original signal is
delayed by the same amount, so switching denoising on or off cross-fades between two aligned
signals and never shifts timing.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from types import TracebackType
from typing import overload

import av
import numpy as np
import numpy.typing as npt

from denoise.audio import FrameFormat, Mono, Planar, SampleFifo, stream_lag
from denoise.codec import codec_for
from denoise.engine import ATTEN_LIM_MAX_DB, DeepFilterNet3, Engine, EngineState, validate_atten_lim
from denoise.exceptions import FormatError, FormatUnknownError, InvalidSettingError, StreamClosedError

CROSSFADE_MS = 15.0
SNR_SMOOTHING_S = 0.2  # time constant of the exponential average of the model's local SNR


@dataclass(frozen=True, slots=True)
class Controls:
    """A stream's live controls as one immutable value: replacing it is atomic, so whoever
    holds it needs no lock. Build client input with `checked`; the engine trusts a Controls."""

    enabled: bool = True
    atten_lim_db: float = ATTEN_LIM_MAX_DB

    @classmethod
    def checked(cls, enabled: object, atten_lim_db: object) -> Controls:
        """Controls from unchecked values; InvalidSettingError for a wrong type or range."""
        return cls(validate_enabled(enabled), validate_atten_lim(atten_lim_db))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class MonoBlock:
    """Mono float32 samples at the engine's rate, with the controls to apply to them: what a
    live stream hands the engine in place of a frame (no format conversion either way; blocks
    of whole hops, e.g. 960 samples, keep the delay at the engine's own)."""

    samples: Mono
    controls: Controls


@dataclass(frozen=True)
class FrameJob:
    """One frame between `Denoiser.prepare()` and `Denoiser.complete()`: its hops for the model."""

    state: EngineState
    pipe: _Pipeline
    hops: npt.NDArray[np.float32]  # (count, hop_size); count may be 0
    pts: int | None
    time_base: Fraction | None
    controls: Controls | None = None  # a MonoBlock's (its result is then a Mono block)


class _Pipeline:
    """The per-format part of a stream: converters, hop buffer and the two aligned FIFOs."""

    def __init__(self, fmt: FrameFormat, engine: Engine) -> None:
        self.fmt = fmt
        self.codec = codec_for(fmt, engine.sample_rate)
        primed = stream_lag(fmt, engine.sample_rate, engine.hop_size)
        self.delay_samples = primed + _model_delay(engine, fmt.sample_rate)
        # The model's first output predates the stream; mute it rather than pass on its residue.
        self.warmup = engine.delay_samples
        self.hops = SampleFifo(1)
        self.wet = SampleFifo(fmt.channels, primed=primed)
        self.dry = SampleFifo(fmt.channels, primed=self.delay_samples)
        self.fade_step = 1.0 / max(1.0, CROSSFADE_MS * fmt.sample_rate / 1000)


def _model_delay(engine: Engine, sample_rate: int) -> int:
    # The resamplers are time-aligned, so the model's delay just scales with the rate (rounded
    # only for rates like 22.05 kHz where it is not a whole number of samples).
    return round(engine.delay_samples * sample_rate / engine.sample_rate)


def algorithmic_delay(
    engine: Engine | None = None, sample_rate: int = 48_000, frame_samples: int = 960
) -> int:
    """The delay, in samples at `sample_rate`, of a Denoiser on `engine` (default DeepFilterNet3)
    fed `frame_samples`-sample frames; known before any frame. Defaults: aiortc's format."""
    engine = engine or DeepFilterNet3()
    fmt = FrameFormat(sample_rate, "mono", "flt", frame_samples, 1)
    return stream_lag(fmt, engine.sample_rate, engine.hop_size) + _model_delay(engine, sample_rate)


class Denoiser:
    """Denoises one stream of `av.AudioFrame`s (any rate, layout, sample format, frame size).

    The first frame fixes the stream format; later frames must match it. Stereo is down-mixed
    to mono for the model and the result copied to both channels (other layouts: FFmpeg's
    standard down- and up-mix).

    Controls (`enabled`, `atten_lim_db`) may be set from any thread at any time; they take effect
    at the next frame. `enabled` cross-fades over 15 ms between denoised and original audio.
    Native state is freed by `close()` (or leaving a `with` block); closing twice is harmless.
    """

    def __init__(
        self,
        *,
        atten_lim_db: float = ATTEN_LIM_MAX_DB,
        enabled: bool = True,
        engine: Engine | None = None,
    ) -> None:
        self._atten_lim_db = validate_atten_lim(atten_lim_db)
        self._enabled = validate_enabled(enabled)
        self._engine: Engine = engine or DeepFilterNet3()
        self._applied_atten = self._atten_lim_db
        self._state: EngineState | None = self._engine.open(self._atten_lim_db)
        self._pipeline: _Pipeline | None = None
        self._gain = 1.0 if enabled else 0.0  # share of denoised audio in the output
        self._snr_db: float | None = None
        hop_seconds = self._engine.hop_size / self._engine.sample_rate
        self._snr_alpha = 1.0 - math.exp(-hop_seconds / SNR_SMOOTHING_S)
        self._lock = threading.Lock()  # one frame at a time; close() waits for a frame in flight

    # -- controls ---------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = validate_enabled(value)

    @property
    def atten_lim_db(self) -> float:
        """Most noise attenuation allowed, in dB: 0 keeps the noise, 100 removes all it can."""
        return self._atten_lim_db

    @atten_lim_db.setter
    def atten_lim_db(self, value: float) -> None:
        self._atten_lim_db = validate_atten_lim(value)

    # -- read-outs --------------------------------------------------------------------------

    @property
    def snr_db(self) -> float | None:
        """The model's local SNR estimate, smoothed over ~200 ms; None before the first frame."""
        return self._snr_db

    @property
    def format(self) -> FrameFormat | None:
        """The stream format fixed by the first frame, or None before it."""
        return self._pipeline.fmt if self._pipeline else None

    @property
    def delay_samples(self) -> int:
        """Constant output delay in samples of the stream's rate (same with denoising off)."""
        if self._pipeline is None:
            raise FormatUnknownError("the delay depends on the stream format: process a frame first")
        return self._pipeline.delay_samples

    @property
    def delay_ms(self) -> float:
        if self._pipeline is None:
            raise FormatUnknownError("the delay depends on the stream format: process a frame first")
        return 1000.0 * self._pipeline.delay_samples / self._pipeline.fmt.sample_rate

    @property
    def closed(self) -> bool:
        return self._state is None

    # -- processing -------------------------------------------------------------------------

    @overload
    def process(self, frame: av.AudioFrame) -> av.AudioFrame: ...

    @overload
    def process(self, frame: MonoBlock) -> Mono: ...

    def process(self, frame: av.AudioFrame | MonoBlock) -> av.AudioFrame | Mono:
        """Denoise one frame; returns a new frame of the same format, size, pts and time base.
        A `MonoBlock` returns its denoised samples, mixed by the block's own controls."""
        job = self.prepare(frame)
        results = [job.state.process_hop(hop) for hop in job.hops]
        outputs = np.array([out for out, _ in results], np.float32).reshape(len(results), -1)
        return self.complete(job, outputs, [snr for _, snr in results])

    def prepare(self, frame: av.AudioFrame | MonoBlock) -> FrameJob:
        """First half of `process()`: buffer `frame` and cut the whole hops now due for the model.
        Run them through `job.state` (or a batch of states), then call `complete()`. A stream's
        frames go through prepare/complete strictly one after the other."""
        with self._lock:
            state = self._live_state()
            if isinstance(frame, MonoBlock):
                rate = self._engine.sample_rate
                pipe = self._pipeline_for(FrameFormat(rate, "mono", "flt", frame.samples.shape[0], 1))
                self._apply_atten(state, frame.controls.atten_lim_db)
                block = frame.samples.reshape(1, -1)
                pipe.dry.push(block)
                pipe.hops.push(block)
                pts, time_base, controls = None, None, frame.controls
            else:
                pipe = self._pipeline_for(FrameFormat.of(frame))
                self._apply_atten(state, self._atten_lim_db)
                pipe.dry.push(pipe.codec.planar(frame))
                pipe.hops.push(pipe.codec.model_input(frame).reshape(1, -1))
                pts, time_base, controls = frame.pts, frame.time_base, None
            hop = self._engine.hop_size
            count = len(pipe.hops) // hop
            hops = (
                pipe.hops.pop(count * hop)[0].reshape(count, hop) if count else np.zeros((0, hop), np.float32)
            )
            return FrameJob(state, pipe, hops, pts, time_base, controls)

    def _apply_atten(self, state: EngineState, atten_lim_db: float) -> None:
        if self._applied_atten != atten_lim_db:
            self._applied_atten = atten_lim_db
            state.set_atten_lim(atten_lim_db)

    def complete(
        self, job: FrameJob, denoised: npt.NDArray[np.float32], snrs: Sequence[float]
    ) -> av.AudioFrame | Mono:
        """Second half of `process()`: the model's output for `job.hops` (same shape) and local
        SNRs in; the output frame out (a Mono block for a MonoBlock's job)."""
        with self._lock:
            self._live_state()
            pipe = job.pipe
            for snr in snrs:
                self._smooth_snr(float(snr))
            flat = np.array(denoised, np.float32).reshape(-1)
            if pipe.warmup and flat.size:
                muted = min(pipe.warmup, flat.size)
                flat[:muted] = 0.0
                pipe.warmup -= muted
            if flat.size:
                pipe.wet.push(flat.reshape(1, -1) if job.controls else pipe.codec.from_model(flat))
            count = pipe.fmt.samples
            if len(pipe.wet) < count:
                raise FormatError(f"internal buffering fell short for {pipe.fmt}")  # a bug, not input
            enabled = job.controls.enabled if job.controls else self._enabled
            mixed = self._mix(pipe, pipe.wet.pop(count), pipe.dry.pop(count), enabled)
            return mixed[0] if job.controls else pipe.codec.frame(mixed, job.pts, job.time_base)

    def _live_state(self) -> EngineState:
        if self._state is None:
            raise StreamClosedError("this Denoiser is closed")
        return self._state

    def _pipeline_for(self, fmt: FrameFormat) -> _Pipeline:
        if self._pipeline is None:
            self._pipeline = _Pipeline(fmt, self._engine)
        elif fmt != self._pipeline.fmt:
            raise FormatError(f"stream format changed from {self._pipeline.fmt} to {fmt}: use a new Denoiser")
        return self._pipeline

    def _smooth_snr(self, lsnr: float) -> None:
        last = self._snr_db
        self._snr_db = lsnr if last is None else last + self._snr_alpha * (lsnr - last)

    def _mix(self, pipe: _Pipeline, wet: Planar, dry: Planar, enabled: bool) -> Planar:
        target = 1.0 if enabled else 0.0
        start = self._gain
        if start == target:
            return wet if target == 1.0 else dry
        step = pipe.fade_step if target > start else -pipe.fade_step
        ramp = start + step * np.arange(1, wet.shape[1] + 1, dtype=np.float32)
        gains = np.clip(ramp, 0.0, 1.0).astype(np.float32)
        self._gain = float(gains[-1])
        return dry + gains * (wet - dry)

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Free the native state (waits for a frame in flight). Safe to call more than once."""
        with self._lock:
            state, self._state = self._state, None
            self._pipeline = None
        if state is not None:
            state.close()

    def __enter__(self) -> Denoiser:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def validate_enabled(value: bool) -> bool:
    """Return `value` if it is a bool, else raise InvalidSettingError (1 or "yes" are refused)."""
    if not isinstance(value, bool):
        raise InvalidSettingError(f"enabled must be True or False, got {value!r}")
    return value
