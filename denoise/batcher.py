"""`Batcher`: worker threads that run many streams' frames through a batch engine as one call.

One worker per core (by default), each stream pinned to the least-loaded worker for its life.
A worker takes every frame that is due from its streams, cuts each into hops
(`Denoiser.prepare`), runs hop k of every stream that has one as a single engine call, and
finishes each frame (`Denoiser.complete`). It never waits for a straggler: whatever arrives
during a call goes into the next one. A stream's items (frames and plain calls such as its
close) run in submission order; at most one frame per stream is in a call. Results for the
event loop are settled with one `call_soon_threadsafe` per call, not one wake-up per frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Protocol, runtime_checkable

import av
import numpy as np
import numpy.typing as npt

from denoise.engine import Engine, EngineState
from denoise.exceptions import StreamClosedError
from denoise.stream import Denoiser, FrameJob, MonoBlock


@runtime_checkable
class BatchEngine(Engine, Protocol):
    """An engine that runs one hop of many states in one call (BatchedDeepFilterNet3)."""

    def process(
        self, states: Sequence[Any], hops: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...


class _Frame:
    """A frame to denoise; its result goes to a concurrent future, or to an asyncio future that
    the worker settles on its loop together with the rest of the call's (one wake-up a call)."""

    __slots__ = ("denoiser", "frame", "future", "loop", "then")

    def __init__(
        self,
        denoiser: Denoiser,
        frame: av.AudioFrame | MonoBlock,
        future: Future[Any] | asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop | None = None,
        then: Callable[[Any], Any] | None = None,
    ) -> None:
        self.denoiser, self.frame, self.future, self.loop = denoiser, frame, future, loop
        self.then = then  # applied to the result on the worker (a live stream's Opus encode)


class _Call:
    __slots__ = ("args", "fn", "future")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], future: Future[Any]) -> None:
        self.fn, self.args, self.future = fn, args, future


class Lane:
    """One stream's place on a worker: submit its frames and calls; they run in order."""

    def __init__(self, worker: _Worker) -> None:
        self._worker = worker
        self._items: deque[_Frame | _Call] = deque()
        self._released = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run `fn(*args)` on the stream's worker after everything submitted before."""
        future: Future[Any] = Future()
        self._worker.put(self, _Call(fn, args, future))
        return future

    def submit_frame(self, denoiser: Denoiser, frame: av.AudioFrame | MonoBlock) -> Future[Any]:
        """Denoise `frame` (or a live stream's MonoBlock) with `denoiser` in the worker's next batch."""
        future: Future[Any] = Future()
        self._worker.put(self, _Frame(denoiser, frame, future))
        return future

    def process(
        self,
        denoiser: Denoiser,
        frame: av.AudioFrame | MonoBlock,
        then: Callable[[Any], Any] | None = None,
    ) -> asyncio.Future[Any]:
        """`submit_frame` for the event loop's thread: an asyncio future, settled on this loop
        with the result, or with `then(result)` run on the worker (no second thread hop)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._worker.put(self, _Frame(denoiser, frame, future, loop, then))
        return future

    def release(self) -> None:
        """The stream is gone: its slot counts no more for pinning (queued items still run)."""
        if not self._released:
            self._released = True
            self._worker.unpin()


class Batcher:
    """The workers of one batch engine. `lane()` pins a new stream; `shutdown()` stops all."""

    def __init__(self, engine: BatchEngine, workers: int) -> None:
        self._workers = [_Worker(engine, f"denoise-batch-{i}") for i in range(max(1, workers))]
        for worker in self._workers:
            worker.start()

    def lane(self) -> Lane:
        worker = min(self._workers, key=lambda w: w.pinned)
        worker.pin()
        return Lane(worker)

    def shutdown(self, wait: bool = True) -> None:
        """Stop the workers once their queued items are done; `wait` joins them."""
        for worker in self._workers:
            worker.stop()
        if wait:
            for worker in self._workers:
                worker.join()


class _Worker(threading.Thread):
    def __init__(self, engine: BatchEngine, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._engine = engine
        self._ready: deque[Lane] = deque()  # lanes with queued items, each listed once
        self._cond = threading.Condition()
        self._stopping = False
        self.pinned = 0

    def pin(self) -> None:
        with self._cond:
            self.pinned += 1

    def unpin(self) -> None:
        with self._cond:
            self.pinned -= 1

    def put(self, lane: Lane, item: _Frame | _Call) -> None:
        with self._cond:
            if self._stopping:
                raise StreamClosedError("the denoise workers are stopped")
            if not lane._items:
                self._ready.append(lane)
            lane._items.append(item)
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def run(self) -> None:
        while True:
            with self._cond:
                while not self._ready and not self._stopping:
                    self._cond.wait()
                if not self._ready:
                    return  # stopping and drained
                heads = self._take_heads()
            calls = [item for item in heads if isinstance(item, _Call)]
            frames = [item for item in heads if isinstance(item, _Frame)]
            for call in calls:
                _run_call(call)
            if frames:
                run_frames(self._engine, frames)

    def _take_heads(self) -> list[_Frame | _Call]:
        """The first item of every lane with work; lanes with more stay ready for the next round."""
        heads = []
        for _ in range(len(self._ready)):
            lane = self._ready.popleft()
            heads.append(lane._items.popleft())
            if lane._items:
                self._ready.append(lane)
        return heads


def _run_call(call: _Call) -> None:
    if not call.future.set_running_or_notify_cancel():
        return
    try:
        result = call.fn(*call.args)
    except BaseException as exc:  # noqa: BLE001 - handed to the caller's future, as concurrent.futures does
        call.future.set_exception(exc)
    else:
        call.future.set_result(result)


def run_frames(engine: BatchEngine, frames: Sequence[_Frame]) -> None:
    """One frame of each of several streams: prepare, the hops as batched calls, complete."""
    outcome = _Outcome()
    jobs: list[tuple[_Frame, FrameJob]] = []
    for item in frames:
        if item.loop is None and not item.future.set_running_or_notify_cancel():  # type: ignore[union-attr]
            continue
        try:
            jobs.append((item, item.denoiser.prepare(item.frame)))
        except BaseException as exc:  # noqa: BLE001 - this frame's error goes to its own future
            outcome.fail(item, exc)
    outputs = [np.zeros_like(job.hops) for _, job in jobs]
    snrs = [np.zeros(len(job.hops), np.float32) for _, job in jobs]
    failed: dict[int, BaseException] = {}
    for step in range(max((len(job.hops) for _, job in jobs), default=0)):
        rows = [i for i, (_, job) in enumerate(jobs) if len(job.hops) > step and i not in failed]
        for i in [i for i in rows if getattr(jobs[i][1].state, "closed", False)]:
            failed[i] = StreamClosedError("the stream was closed during its frame")
            rows.remove(i)
        if not rows:
            continue
        states: list[EngineState] = [jobs[i][1].state for i in rows]
        try:
            out, lsnr = engine.process(states, np.stack([jobs[i][1].hops[step] for i in rows]))
        except BaseException as exc:  # noqa: BLE001 - e.g. a state closed under us: fail these frames
            failed.update(dict.fromkeys(rows, exc))
            continue
        for row, i in enumerate(rows):
            outputs[i][step] = out[row]
            snrs[i][step] = lsnr[row]
    for i, (item, job) in enumerate(jobs):
        if i in failed:
            outcome.fail(item, failed[i])
            continue
        try:
            result = item.denoiser.complete(job, outputs[i], snrs[i].tolist())
            outcome.done(item, result if item.then is None else item.then(result))
        except BaseException as exc:  # noqa: BLE001 - this frame's error goes to its own future
            outcome.fail(item, exc)
    outcome.deliver()


class _Outcome:
    """Results of one call: concurrent futures are set at once, asyncio ones in one batch per loop."""

    def __init__(self) -> None:
        self._by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, bool]]] = {}

    def done(self, item: _Frame, result: Any) -> None:
        self._settle(item, result, False)

    def fail(self, item: _Frame, exc: BaseException) -> None:
        self._settle(item, exc, True)

    def _settle(self, item: _Frame, value: Any, failed: bool) -> None:
        if item.loop is None:
            future: Future[Any] = item.future  # type: ignore[assignment]
            if failed:
                future.set_exception(value)
            else:
                future.set_result(value)
        else:
            self._by_loop.setdefault(item.loop, []).append((item.future, value, failed))  # type: ignore[arg-type]

    def deliver(self) -> None:
        for loop, settled in self._by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                loop.call_soon_threadsafe(_settle_all, settled)


def _settle_all(settled: list[tuple[asyncio.Future[Any], Any, bool]]) -> None:
    for future, value, failed in settled:
        if future.done():
            continue  # a cancelled wait: the frame was still processed
        if failed:
            future.set_exception(value)
        else:
            future.set_result(value)
