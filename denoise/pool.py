"""Asyncio adapter: denoise live streams' frames on a shared thread pool.

    pool = ProcessorPool()                      # one per process; starts threads lazily
    processor = pool.open(atten_lim_db=100.0)   # one per audio track; returns at once
    out = await processor.process(frame)        # same format/size/pts as `frame`, 30 ms later
    out = await processor.process_samples(mono) # or mono float32 at 48 kHz, no conversion
    processor.enabled = False                   # live controls, applied from the next frame
    processor.controls = Controls(...)          # (the same, as one value; see Controls)
    processor.close()                           # frees the model state after in-flight work
    await pool.aclose()                         # at shutdown: closes the rest, joins threads

The engine is chosen by `DENOISE_ENGINE`: `batched` (default) is BatchedDeepFilterNet3 behind a
`Batcher` (one worker per core, streams pinned to workers, each worker running all due frames of
its streams as one call; opening a stream compiles nothing); `libdf` is libDF's C runtime on a
thread pool (each stream's model loads, ~0.5 s, on the pool). Either way each stream's frames are
processed one at a time, in call order, off the event loop. The engine is built once per pool in
the background from construction; the threads stop with the last open processor and start again
with the next one. Nothing here imports Django.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, Protocol, TypeVar

import av

from denoise.audio import Mono
from denoise.batched import BatchedDeepFilterNet3
from denoise.batcher import BatchEngine, Batcher
from denoise.engine import ATTEN_LIM_MAX_DB, DeepFilterNet3, Engine
from denoise.exceptions import EngineError, StreamClosedError
from denoise.stream import Controls, Denoiser, MonoBlock

T = TypeVar("T")
ENGINES: dict[str, Callable[[], Engine]] = {"batched": BatchedDeepFilterNet3, "libdf": DeepFilterNet3}


def engine_from_env() -> Engine:
    """The engine `DENOISE_ENGINE` names (`batched` when unset)."""
    name = os.environ.get("DENOISE_ENGINE", "batched").strip().lower() or "batched"
    if name not in ENGINES:
        raise EngineError(f"DENOISE_ENGINE must be one of {sorted(ENGINES)}, got {name!r}")
    return ENGINES[name]()


class _Lane(Protocol):
    """Where one stream's work runs, in submission order."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]: ...

    def process(
        self,
        denoiser: Denoiser,
        frame: av.AudioFrame | MonoBlock,
        then: Callable[[Any], Any] | None = None,
    ) -> Awaitable[Any]: ...

    def release(self) -> None: ...


class _ExecutorLane:
    """A stream on the shared thread pool (libDF: each native call drops the GIL)."""

    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self._executor = executor

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        return self._executor.submit(fn, *args)

    def process(
        self,
        denoiser: Denoiser,
        frame: av.AudioFrame | MonoBlock,
        then: Callable[[Any], Any] | None = None,
    ) -> Awaitable[Any]:
        return asyncio.wrap_future(self._executor.submit(_process_then, denoiser, frame, then))

    def release(self) -> None:
        return None


class _Workers(Protocol):
    def shutdown(self, wait: bool = True) -> None: ...


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask, where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class ProcessorPool:
    """Owns the worker threads and the engine shared by its `AudioProcessor`s."""

    def __init__(
        self, *, workers: int | None = None, engine_factory: Callable[[], Engine] = engine_from_env
    ) -> None:
        self._workers = workers or cpu_count()
        self._engine: Future[Engine] = Future()
        # Built in the background (the batched graph takes ~0.3 s), so no go-live waits for it.
        threading.Thread(target=_build, args=(engine_factory, self._engine), name="denoise-engine").start()
        self._executor: ThreadPoolExecutor | Batcher | None = None
        self._retired: set[_Workers] = set()  # stopped with their last user, still working
        self._open: set[AudioProcessor] = set()
        self._closed = False

    @property
    def running(self) -> bool:
        """Whether worker threads are currently allocated (between first open and last close)."""
        return self._executor is not None

    @property
    def engine(self) -> Engine:
        """The pool's engine (waits for its build; raises the build's error)."""
        return self._engine.result()

    def open(
        self,
        *,
        atten_lim_db: float = ATTEN_LIM_MAX_DB,
        enabled: bool = True,
        controls: Controls | None = None,
    ) -> AudioProcessor:
        """A processor for one stream. Its model loads in the background; the first
        `process()` waits for it. Raises InvalidSettingError for bad settings. `controls`, when
        given (already checked), stands for `atten_lim_db` and `enabled`."""
        if controls is None:
            controls = Controls.checked(enabled, atten_lim_db)
        if self._closed:
            raise StreamClosedError("this ProcessorPool is closed")
        engine = self.engine
        if self._executor is None:
            if isinstance(engine, BatchEngine):
                self._executor = Batcher(engine, self._workers)
            else:
                self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="denoise")
        if isinstance(self._executor, Batcher):
            lane: _Lane = self._executor.lane()
        else:
            lane = _ExecutorLane(self._executor)
        processor = AudioProcessor(self, lane, engine, controls)
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
        if not self._engine.done():
            await asyncio.wrap_future(self._engine)  # the build thread ends with the pool

    async def __aenter__(self) -> ProcessorPool:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class AudioProcessor:
    """One stream's Denoiser, driven from asyncio. Create it with `ProcessorPool.open()`;
    use it from the event loop's thread (the controls may be set from anywhere)."""

    def __init__(self, pool: ProcessorPool, lane: _Lane, engine: Engine, controls: Controls) -> None:
        self._pool = pool
        self._lane = lane
        self._engine = engine
        # The one place the stream's controls live; each frame reads them once.
        self.controls = controls
        self._denoiser: Future[Denoiser] = lane.submit(
            _open_denoiser, engine, controls.atten_lim_db, controls.enabled
        )
        self._turn = asyncio.Lock()  # FIFO: a stream's frames run one at a time, in call order
        self._closed = False

    async def process(self, frame: av.AudioFrame) -> av.AudioFrame:
        """Denoise one frame on the pool; frames of this stream are handled in call order."""
        async with self._turn:
            denoiser = await self._loaded()
            if self._closed:  # checked after the await: close() may have run meanwhile
                raise StreamClosedError("this AudioProcessor is closed")
            controls = self.controls
            denoiser.enabled = controls.enabled
            denoiser.atten_lim_db = controls.atten_lim_db
            return await self._lane.process(denoiser, frame)  # type: ignore[no-any-return]

    async def process_samples(self, samples: Mono) -> Mono:
        """Denoise one block of mono float32 samples at the engine's rate (a `MonoBlock` with
        the current controls): what a live stream converted once at its entry."""
        async with self._turn:
            denoiser = await self._loaded()
            if self._closed:
                raise StreamClosedError("this AudioProcessor is closed")
            block = MonoBlock(samples, self.controls)
            return await self._lane.process(denoiser, block)  # type: ignore[no-any-return]

    async def process_samples_then(self, samples: Mono, then: Callable[[Mono], T]) -> T:
        """`process_samples`, then `then(denoised)` on the same worker thread, in the stream's
        order: what the live path's Opus encode costs without a thread hop of its own (a wake-up
        of another thread and of the loop per frame). `then` must not block."""
        async with self._turn:
            denoiser = await self._loaded()
            if self._closed:
                raise StreamClosedError("this AudioProcessor is closed")
            block = MonoBlock(samples, self.controls)
            return await self._lane.process(denoiser, block, then)  # type: ignore[no-any-return]

    async def _loaded(self) -> Denoiser:
        """The stream's Denoiser, waiting for its load only while it runs: wrapping a finished
        concurrent future still costs a loop wake-up (call_soon_threadsafe) every frame."""
        if self._denoiser.done():
            return self._denoiser.result()  # raises the load's error, as awaiting it would
        return await asyncio.wrap_future(self._denoiser)

    @property
    def sample_rate(self) -> int:
        """The rate `process_samples` takes (the engine's)."""
        return self._engine.sample_rate

    @property
    def delay_s(self) -> float:
        """The output's constant delay for `process_samples` blocks of whole hops."""
        return self._engine.delay_samples / self._engine.sample_rate

    async def ready(self) -> bool:
        """Wait for the model to load (libDF: ~0.5 s of CPU; batched: at once), so the first
        frames do not queue behind it. True once loaded; False after close() or a failed load
        (process() raises that error). Bound it with `asyncio.timeout()`: cancelling the wait
        leaves the load going."""
        loaded = asyncio.wrap_future(self._denoiser)
        loaded.add_done_callback(_observe)
        await asyncio.wait({loaded})  # unlike awaiting it, wait() never cancels the load
        return self.denoiser is not None and not self._closed

    @property
    def enabled(self) -> bool:
        return self.controls.enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self.controls = Controls.checked(value, self.controls.atten_lim_db)

    @property
    def atten_lim_db(self) -> float:
        return self.controls.atten_lim_db

    @atten_lim_db.setter
    def atten_lim_db(self, value: float) -> None:
        self.controls = Controls.checked(self.controls.enabled, value)

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
        closing = self._lane.submit(_close_when_loaded, self._denoiser)
        self._lane.release()
        self._pool._release(self, closing)


def _build(factory: Callable[[], Engine], result: Future[Engine]) -> None:
    try:
        engine = factory()
    except BaseException as exc:  # noqa: BLE001 - handed to open() through the future
        result.set_exception(exc)
    else:
        result.set_result(engine)


def _process_then(
    denoiser: Denoiser, frame: av.AudioFrame | MonoBlock, then: Callable[[Any], Any] | None
) -> Any:
    result = denoiser.process(frame)
    return result if then is None else then(result)


def _open_denoiser(engine: Engine, atten_lim_db: float, enabled: bool) -> Denoiser:
    return Denoiser(atten_lim_db=atten_lim_db, enabled=enabled, engine=engine)


def _observe(loaded: asyncio.Future[Denoiser]) -> None:
    # A failed load is reported by process(); reading it here keeps asyncio from logging it twice.
    if not loaded.cancelled():
        loaded.exception()


def _close_when_loaded(denoiser: Future[Denoiser]) -> None:
    if denoiser.exception() is None:  # waits for the load; a failed load has nothing to free
        denoiser.result().close()
