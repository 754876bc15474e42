"""The broadcaster's audio path inside one live session, in one format from entry to encode.

    remote track ─reader─▶ mono float32, 48 kHz, 20 ms blocks (the one conversion)
        ─▶ inbox (bounded, drop oldest) ─worker─▶ engine (thread pool)
        ─▶ Opus encode once, on the engine's worker ─▶ Recorder.write(clean, raw) ─▶ Hub ─▶ listener queues

The reader always drains the remote track (an unread aiortc track queues frames forever),
converts each frame to what the engine consumes and stamps its arrival; the worker handles the
blocks one at a time, in order. The engine, the recorder and the encoder all take that same
mono array: no stage converts again (the recorder's int16 conversion runs in its own thread).

A resumed stream (`attach` of a new track after a broadcaster's reconnection) keeps the same
worker, engine and recording: the recorder records the time without blocks as silence (its
timeline follows the wall clock), and listeners hear silence meanwhile (their tracks stand in
for late packets).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

import av
import av.error
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.audio.resampler import AudioResampler

from denoise.exceptions import DenoiseError
from denoise.pool import AudioProcessor
from streams.live.fanout import EncodedPacket, Hub
from streams.live.lifecycle import EndReason
from streams.live.metrics import Metrics
from streams.live.opus import FRAME_SAMPLES, SAMPLE_RATE, Blocks, Mono, OpusEncoder
from streams.live.tasks import TaskSet
from streams.recordings.recorder import Recorder

log = logging.getLogger(__name__)

INBOX_FRAMES = 50  # 1 s of input may wait for the engine; older frames are dropped
DRAIN_S = 2.0  # at the end, at most this long to record frames still waiting for the engine
LATE_AFTER_S = FRAME_SAMPLES / SAMPLE_RATE  # a frame slower than real time is late


class EntryConverter:
    """Any incoming audio frame to mono float32 at 48 kHz in 960-sample blocks.

    aiortc's frames (s16, packed stereo carrying one microphone, 48 kHz, 960 samples) take one
    numpy pass: the channels' average, scaled to [-1, 1]. Other rates or sample formats are
    first brought to 48 kHz planar float by swresample, keeping their channels, so the average
    stays level-neutral (FFmpeg's own down-mix to float mono adds 3 dB).
    """

    def __init__(self) -> None:
        self._resampler: AudioResampler | None = None
        self._blocks = Blocks()

    def convert(self, frame: av.AudioFrame) -> list[Mono]:
        channels = frame.layout.nb_channels
        if frame.format.name == "s16" and frame.sample_rate == SAMPLE_RATE:
            flat = frame.to_ndarray().reshape(-1).astype(np.float32)
            if channels == 2:  # aiortc's case: a strided sum is ~20x cheaper than mean(axis=1)
                return self._blocks.push((flat[0::2] + flat[1::2]) * np.float32(0.5 / 32768))
            mono = flat.reshape(-1, channels).mean(axis=1, dtype=np.float32) if channels > 1 else flat
            return self._blocks.push(mono * np.float32(1 / 32768))
        planar = np.concatenate(
            [f.to_ndarray() for f in self._resample(frame)] or [np.zeros((channels, 0), np.float32)], axis=1
        )
        return self._blocks.push(planar.mean(axis=0, dtype=np.float32))

    def _resample(self, frame: av.AudioFrame) -> list[av.AudioFrame]:
        if self._resampler is None:
            self._resampler = AudioResampler(format="fltp", layout=frame.layout.name, rate=SAMPLE_RATE)
        try:
            return self._resampler.resample(frame)
        except ValueError:  # the track changed its format: start over with a fresh resampler
            self._resampler = AudioResampler(format="fltp", layout=frame.layout.name, rate=SAMPLE_RATE)
            return self._resampler.resample(frame)


class AudioPipeline:
    def __init__(
        self,
        *,
        processor: AudioProcessor,
        recorder: Recorder,
        hub: Hub,
        metrics: Metrics,
        on_end: Callable[[EndReason], None],
    ) -> None:
        self._processor = processor
        self._recorder = recorder
        self._hub = hub
        self._metrics = metrics
        self._on_end = on_end  # asks the session to end, with a reason
        self._encoder = OpusEncoder()
        self._inbox: deque[tuple[Mono, float]] = deque()
        self._ready = asyncio.Event()
        self._draining = False
        self._tasks = TaskSet("pipeline", on_failure=lambda _exc: on_end(EndReason.INTERNAL_ERROR))
        self._reader: asyncio.Task[None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self.last_media: float | None = None
        self.frames_in = 0
        self.frames_started = 0  # handed to the engine: frames_out plus the one in flight
        self.frames_out = 0

    def attach(self, track: MediaStreamTrack) -> None:
        """Read `track` from now on: the first one, or a resumed broadcaster's (the old reader
        stops; its track is not read again)."""
        if self._draining:
            return
        if self._worker is None:
            self._worker = self._tasks.spawn(self._work(), "worker")
        if self._reader is not None:
            self._reader.cancel()
        self._reader = self._tasks.spawn(self._read(track), "reader")

    async def stop(self) -> None:
        """Take no more media, record what already arrived (bounded by DRAIN_S), then stop."""
        self._draining = True
        self._ready.set()
        if self._reader is not None:
            self._reader.cancel()
        if self._worker is not None:
            _, pending = await asyncio.wait([self._worker], timeout=DRAIN_S)
            for task in pending:
                task.cancel()
        await self._tasks.join()

    async def _read(self, track: MediaStreamTrack) -> None:
        entry = EntryConverter()
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                self._on_end(EndReason.BROADCASTER_ENDED)
                return
            if not isinstance(frame, av.AudioFrame):
                continue
            self.last_media = time.monotonic()
            try:
                blocks = entry.convert(frame)
            except (av.error.FFmpegError, ValueError) as exc:  # a frame libswresample refuses
                log.warning("Dropped a broadcaster frame that cannot be converted: %s", exc)
                continue
            for block in blocks:
                self.frames_in += 1
                if len(self._inbox) >= INBOX_FRAMES:
                    self._inbox.popleft()
                    self._metrics.input_frames_dropped.inc()
                self._inbox.append((block, self.last_media))
            self._ready.set()

    async def _next(self) -> tuple[Mono, float] | None:
        """The oldest waiting block; None once stopping has emptied the inbox."""
        while not self._inbox:
            if self._draining:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self._inbox.popleft()

    async def _work(self) -> None:
        # The Opus encode runs on the engine's worker right after the denoise
        # (`process_samples_then`): no thread hop or loop wake-up of its own per frame.
        engine_stage, encode_stage = (self._metrics.stage_seconds.labels(s) for s in ("engine", "encode"))
        while (item := await self._next()) is not None:
            raw, arrival = item
            self.frames_started += 1
            started = time.monotonic()
            try:
                clean, packets, encode_s = await self._processor.process_samples_then(raw, self._encode)
            except DenoiseError as exc:
                log.error("The engine failed: %s", exc)
                self._on_end(EndReason.ENGINE_ERROR)
                return
            done = time.monotonic()
            engine_stage.observe(done - started - encode_s)
            encode_stage.observe(encode_s)
            self._recorder.write(clean, raw, at=arrival)  # the engine's delay is no gap
            self.frames_out += 1
            if self._draining:  # stopping: only the recording still wants these frames
                continue
            for data in packets:
                self._hub.publish(EncodedPacket(data, arrival))
            self._metrics.frames_processed.inc()
            if done - arrival > LATE_AFTER_S:
                self._metrics.frames_late.inc()

    def _encode(self, clean: Mono) -> tuple[Mono, list[bytes], float]:
        """On the engine's worker thread, right after the frame's denoise (in the stream's order)."""
        started = time.monotonic()
        packets = self._encoder.encode(clean)
        return clean, packets, time.monotonic() - started
