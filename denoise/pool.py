"""Asyncio adapter: denoise live streams' frames on a shared thread pool.

    pool = ProcessorPool()                      # one per process; starts threads lazily
    processor = pool.open(atten_lim_db=100.0)   # one per audio track; returns at once
    out = await processor.process(frame)        # same format/size/pts as `frame`, 30 ms later
    processor.enabled = False                   # live controls, applied from the next frame
    processor.close()                           # frees the model state after in-flight work
    await pool.aclose()                         # at shutdown: closes the rest, joins threads

The heavy work (model load, ~0.5 s; each frame, ~1.5-3 ms) runs on a thread pool sized to the
CPU count. Native calls drop the GIL, so different streams run in parallel, while each stream's
frames are processed one at a time, in call order. The pool's threads stop with its last open
processor and start again with the next one. Nothing here imports Django.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

import av

from denoise.engine import ATTEN_LIM_MAX_DB, DeepFilterNet3, Engine, validate_atten_lim
from denoise.exceptions import StreamClosedError
from denoise.stream import Denoiser, validate_enabled


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask, where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class ProcessorPool:
    """Owns the worker threads and the engine shared by its `AudioProcessor`s."""

    def __init__(
        self, *, workers: int | None = None, engine_factory: Callable[[], Engine] = DeepFilterNet3
    ) -> None:
        self._workers = workers or cpu_count()
        self._engine_factory = engine_factory
        self._engine: Engine | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._retired: set[ThreadPoolExecutor] = set()  # stopped with their last user, still working
        self._open: set[AudioProcessor] = set()
        self._closed = False

    @property
    def running(self) -> bool:
        """Whether worker threads are currently allocated (between first open and last close)."""
        return self._executor is not None

    def open(self, *, atten_lim_db: float = ATTEN_LIM_MAX_DB, enabled: bool = True) -> AudioProcessor:
        """A processor for one stream. Its model loads in the background; the first
        `process()` waits for it. Raises InvalidSettingError for bad settings."""
        if self._closed:
            raise StreamClosedError("this ProcessorPool is closed")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="denoise")
        if self._engine is None:
            self._engine = self._engine_factory()
        processor = AudioProcessor(self, self._executor, self._engine, atten_lim_db, enabled)
        self._open.add(processor)
        return processor

    def _release(self, processor: AudioProcessor, last_work: Future[None]) -> None:
        self._open.discard(processor)
        if not self._open and self._executor is not None:
            executor, self._executor = self._executor, None
            executor.shutdown(wait=False)  # queued work (the last close) still runs
            self._retired.add(executor)
            # Forgotten once its work is done (its threads then exit): aclose() joins the rest.
            last_work.add_done_callback(lambda _: self._retired.discard(executor))

    async def aclose(self) -> None:
        """Close every open processor and wait for the worker threads to finish."""
        self._closed = True
        for processor in list(self._open):
            processor.close()
        retired, self._retired = list(self._retired), set()
        for executor in retired:
            await asyncio.to_thread(executor.shutdown, wait=True)

    async def __aenter__(self) -> ProcessorPool:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class AudioProcessor:
    """One stream's Denoiser, driven from asyncio. Create it with `ProcessorPool.open()`;
    use it from the event loop's thread (the controls may be set from anywhere)."""

    def __init__(
        self,
        pool: ProcessorPool,
        executor: ThreadPoolExecutor,
        engine: Engine,
        atten_lim_db: float,
        enabled: bool,
    ) -> None:
        self._pool = pool
        self._executor = executor
        self._atten_lim_db = validate_atten_lim(atten_lim_db)
        self._enabled = validate_enabled(enabled)
        self._denoiser: Future[Denoiser] = executor.submit(
            Denoiser, atten_lim_db=atten_lim_db, enabled=enabled, engine=engine
        )
        self._turn = asyncio.Lock()  # FIFO: a stream's frames run one at a time, in call order
        self._closed = False

    async def process(self, frame: av.AudioFrame) -> av.AudioFrame:
        """Denoise one frame on the pool; frames of this stream are handled in call order."""
        async with self._turn:
            denoiser = await asyncio.wrap_future(self._denoiser)
            if self._closed:  # checked after the await: close() may have run meanwhile
                raise StreamClosedError("this AudioProcessor is closed")
            denoiser.enabled = self._enabled
            denoiser.atten_lim_db = self._atten_lim_db
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, denoiser.process, frame)

    async def ready(self) -> bool:
        """Wait for the model to load (~0.5 s of CPU), so the first frames do not queue behind
        it. True once loaded; False after close() or a failed load (process() raises that
        error). Bound it with `asyncio.timeout()`: cancelling the wait leaves the load going."""
        loaded = asyncio.wrap_future(self._denoiser)
        loaded.add_done_callback(_observe)
        await asyncio.wait({loaded})  # unlike awaiting it, wait() never cancels the load
        return self.denoiser is not None and not self._closed

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = validate_enabled(value)

    @property
    def atten_lim_db(self) -> float:
        return self._atten_lim_db

    @atten_lim_db.setter
    def atten_lim_db(self, value: float) -> None:
        self._atten_lim_db = validate_atten_lim(value)

    @property
    def denoiser(self) -> Denoiser | None:
        """The stream's Denoiser once its model has loaded (for snr_db, delay_ms, format)."""
        if self._denoiser.done() and not self._denoiser.exception():
            return self._denoiser.result()
        return None

    @property
    def snr_db(self) -> float | None:
        denoiser = self.denoiser
        return denoiser.snr_db if denoiser else None

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Free the stream's model (on the pool, after any frame in flight). Idempotent."""
        if self._closed:
            return
        self._closed = True
        closing = self._executor.submit(_close_when_loaded, self._denoiser)
        self._pool._release(self, closing)


def _observe(loaded: asyncio.Future[Denoiser]) -> None:
    # A failed load is reported by process(); reading it here keeps asyncio from logging it twice.
    if not loaded.cancelled():
        loaded.exception()


def _close_when_loaded(denoiser: Future[Denoiser]) -> None:
    if denoiser.exception() is None:  # waits for the load; a failed load has nothing to free
        denoiser.result().close()
