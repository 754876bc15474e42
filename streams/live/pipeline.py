"""The broadcaster's audio path inside one live session.

    remote track ─reader─▶ inbox (bounded, drop oldest) ─worker─▶ engine (thread pool)
        ─▶ Recorder.write(clean, raw) ─▶ Opus encode once (thread) ─▶ Hub ─▶ listener queues

The reader always drains the remote track (an unread aiortc track queues frames forever) and
stamps each frame's arrival; the worker handles frames one at a time, in order.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from typing import Any, TypeVar

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from denoise.exceptions import DenoiseError
from denoise.pool import AudioProcessor
from streams.live.fanout import FRAME_SAMPLES, SAMPLE_RATE, EncodedPacket, Hub, OpusEncoder
from streams.live.metrics import Metrics
from streams.recordings.recorder import Recorder

log = logging.getLogger(__name__)

INBOX_FRAMES = 50  # 1 s of input may wait for the engine; older frames are dropped
DRAIN_S = 2.0  # at the end, at most this long to record frames still waiting for the engine
LATE_AFTER_S = FRAME_SAMPLES / SAMPLE_RATE  # a frame slower than real time is late
T = TypeVar("T")


def detached(coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
    """A task that outlives the request that started it, in a fresh context.

    A task copies the caller's contextvars; inside a Django request those hold asgiref's
    per-request executor, which is gone once the response is sent, so `sync_to_async` in the
    task would fail ("CurrentThreadExecutor already quit or is broken").
    """
    return asyncio.get_running_loop().create_task(coro, name=name, context=contextvars.Context())


class AudioPipeline:
    def __init__(
        self,
        *,
        processor: AudioProcessor,
        recorder: Recorder,
        hub: Hub,
        metrics: Metrics,
        encode_executor: Executor,
        on_end: Callable[[str], None],
    ) -> None:
        self._processor = processor
        self._recorder = recorder
        self._hub = hub
        self._metrics = metrics
        self._executor = encode_executor
        self._on_end = on_end  # asks the session to end, with a reason
        self._encoder = OpusEncoder()
        self._inbox: deque[tuple[av.AudioFrame, float]] = deque()
        self._ready = asyncio.Event()
        self._draining = False
        self._reader: asyncio.Task[None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self.last_media: float | None = None
        self.frames_in = 0
        self.frames_started = 0  # handed to the engine: frames_out plus the one in flight
        self.frames_out = 0

    def start(self, track: MediaStreamTrack) -> None:
        self._reader = self._watch(detached(self._read(track), "pipeline-reader"))
        self._worker = self._watch(detached(self._work(), "pipeline-worker"))

    async def stop(self) -> None:
        """Take no more media, record what already arrived (bounded by DRAIN_S), then stop."""
        self._draining = True
        self._ready.set()
        tasks = [t for t in (self._reader, self._worker) if t is not None]
        if self._reader is not None:
            self._reader.cancel()
        if self._worker is not None:
            _, pending = await asyncio.wait([self._worker], timeout=DRAIN_S)
            for task in pending:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _watch(self, task: asyncio.Task[None]) -> asyncio.Task[None]:
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("The audio pipeline failed", exc_info=task.exception())
            self._on_end("internal_error")

    async def _read(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                self._on_end("broadcaster_ended")
                return
            if not isinstance(frame, av.AudioFrame):
                continue
            self.last_media = time.monotonic()
            self.frames_in += 1
            if len(self._inbox) >= INBOX_FRAMES:
                self._inbox.popleft()
                self._metrics.input_frames_dropped.inc()
            self._inbox.append((frame, self.last_media))
            self._ready.set()

    async def _next(self) -> tuple[av.AudioFrame, float] | None:
        """The oldest waiting frame; None once stopping has emptied the inbox."""
        while not self._inbox:
            if self._draining:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self._inbox.popleft()

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        stage = self._metrics.stage_seconds
        while (item := await self._next()) is not None:
            raw, arrival = item
            self.frames_started += 1
            started = time.monotonic()
            try:
                clean = await self._processor.process(raw)
            except DenoiseError as exc:
                log.error("The engine failed: %s", exc)
                self._on_end("engine_error")
                return
            engine_done = time.monotonic()
            stage.labels("engine").observe(engine_done - started)
            self._recorder.write(clean, raw)
            self.frames_out += 1
            if self._draining:  # stopping: only the recording still wants these frames
                continue
            packets = await loop.run_in_executor(self._executor, self._encoder.encode, clean)
            done = time.monotonic()
            stage.labels("encode").observe(done - engine_done)
            for data in packets:
                self._hub.publish(EncodedPacket(data, arrival))
            self._metrics.frames_processed.inc()
            if done - arrival > LATE_AFTER_S:
                self._metrics.frames_late.inc()
