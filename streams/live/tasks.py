"""Background tasks of the live path: detached from the request that starts them, and owned.

A task copies the caller's contextvars; inside a Django request those hold asgiref's
per-request executor, which is gone once the response is sent, so `sync_to_async` in the task
would fail ("CurrentThreadExecutor already quit or is broken"). `detached` starts it in a fresh
context; `TaskSet` keeps such tasks referenced until done and reports the ones that failed.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


def detached(coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
    """A task that outlives the request that started it, in a fresh context."""
    return asyncio.get_running_loop().create_task(coro, name=name, context=contextvars.Context())


class TaskSet:
    """Detached tasks of one owner: each failure is logged and passed to `on_failure`."""

    def __init__(self, prefix: str, on_failure: Callable[[BaseException], None] | None = None) -> None:
        self._prefix = prefix
        self._on_failure = on_failure
        self._tasks: set[asyncio.Task[Any]] = set()
        self._uncancellable: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str, *, cancel: bool = True) -> asyncio.Task[Any]:
        """Start `coro`; `cancel=False` keeps it running through `cancel_all()`."""
        task = detached(coro, f"{self._prefix}-{name}")
        self._tasks.add(task)
        if not cancel:
            self._uncancellable.add(task)
        task.add_done_callback(self._done)
        return task

    async def cancel_all(self) -> None:
        """Cancel what may be cancelled and wait for every task to finish."""
        tasks = list(self._tasks)
        for task in tasks:
            if task not in self._uncancellable:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def join(self) -> None:
        """Wait for every task, without cancelling any."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._uncancellable.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        log.error("Task %s failed", task.get_name(), exc_info=task.exception())
        if self._on_failure is not None:
            self._on_failure(task.exception())  # type: ignore[arg-type]
