"""Graceful shutdown under Daphne (SIGTERM from systemd, or Ctrl-C): done within a few seconds.

In order: stop accepting connections (the listening ports close, so a restart's new process
can take over at once), tell every WebSocket client ("server_restarting", close 4012: the pages
reconnect), end every stream (peers closed, recordings finished, the database told), leave
presence (friends hear of it), then stop the reactor. Daphne's own shutdown then cancels what
is left, and the process ends at once: everything durable is written by then, and the
interpreter's own teardown (collecting the engine's and codecs' objects) would add more than a
second to every restart. Should any of it hang (a request stuck in a thread, the database not answering), the
process exits anyway `DEADLINE_S` after the signal: everything durable is already written or
left for the next process's recovery, and a hung exit would cost more downtime than it saves.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from typing import Any

from fc25_denoise.services import Services

log = logging.getLogger("fc25_denoise")
DRAIN_S = 3.5  # telling clients and ending streams, at most
DEADLINE_S = 4.5  # from the signal to the process's end, whatever happens


class GracefulShutdown:
    def __init__(self, services: Services, reactor: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.services = services
        self.reactor = reactor
        self.loop = loop
        self._began: float | None = None
        self._drained = False
        self._task: asyncio.Future[None] | None = None

    def install(self) -> None:
        """Take over SIGTERM and SIGINT from Twisted (call once the reactor runs)."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        self.reactor.addSystemEventTrigger("after", "shutdown", self._exit)
        log.debug("SIGTERM and SIGINT start a graceful shutdown.")

    def _on_signal(self, signum: int, frame: object) -> None:
        self.loop.call_soon_threadsafe(self.begin, signal.Signals(signum).name)

    def begin(self, why: str = "shutdown") -> None:
        if self._began is not None:
            log.warning("%s again during shutdown: exiting now.", why)
            os._exit(1)
        self._began = time.monotonic()
        log.info("%s: shutting down (stop accepting, tell clients, end streams).", why)
        timer = threading.Timer(DEADLINE_S, self._overrun)
        timer.daemon = True
        timer.start()
        self._task = asyncio.ensure_future(self._drain(), loop=self.loop)
        self._task.add_done_callback(_report)

    async def _drain(self) -> None:
        try:
            self._stop_listening()
            async with asyncio.timeout(DRAIN_S):
                await self.services.drain()
        except TimeoutError:
            log.error("Shutdown: ending streams took over %.1f s; stopping anyway.", DRAIN_S)
        else:
            self._drained = True
            log.info("Shutdown: drained in %.2f s; stopping.", time.monotonic() - (self._began or 0.0))
        finally:  # whatever failed (logged by _report), the process still stops
            self.reactor.stop()

    def _stop_listening(self) -> None:
        from twisted.internet import tcp  # a unix-socket port is a tcp.Port too

        ports = [reader for reader in self.reactor.getReaders() if isinstance(reader, tcp.Port)]
        for port in ports:
            port.stopListening()
        log.info("Shutdown: stopped listening on %d port(s).", len(ports))

    def _exit(self) -> None:
        if self._began is None:  # the reactor stopped for another reason: a normal exit
            return
        log.info("Shutdown: done %.2f s after the signal.", time.monotonic() - self._began)
        logging.shutdown()
        os._exit(0 if self._drained else 1)

    def _overrun(self) -> None:
        # Runs on its own daemon thread, also while interpreter exit waits for other threads.
        log.error("Shutdown did not finish within %.1f s of the signal: exiting now.", DEADLINE_S)
        logging.shutdown()
        os._exit(0 if self._drained else 1)


def _report(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("Shutdown: draining failed; stopped anyway.", exc_info=task.exception())
