"""Daphne processes on one Redis (launched by testing/daphne.py), and a WebSocket client, for
presence tests and the bench.

Used by bench/presence_bench.py and streams/presence/tests/test_processes.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin


class RedisServer:
    """A private redis-server on a unix socket in `folder`, which a test may kill (SIGKILL) and
    start again on the same socket: empty, as after a crash without persistence."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.sock = folder / "redis.sock"
        self.url = f"unix://{self.sock}"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        args = [
            "redis-server",
            "--port",
            "0",
            "--unixsocket",
            str(self.sock),
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.proc = subprocess.Popen([*args, "--dir", str(self.folder)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:  # printed once the socket accepts connections
            if "ready to accept connections" in line.lower():
                break
        else:
            raise RuntimeError("redis-server exited before accepting connections")
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # keep the pipe drained

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.sock.unlink(missing_ok=True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@contextlib.contextmanager
def own_redis(folder: Path) -> Iterator[str]:
    """A private redis-server on a unix socket in `folder`; yields its URL."""
    server = RedisServer(folder)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def cluster_env(redis_url: str, db_url: str, **settings: str) -> dict[str, str]:
    prefix = f"presence-{uuid.uuid4().hex[:8]}"
    return {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "PRESENCE_REDIS_PREFIX": prefix,
        "CHANNELS_PREFIX": prefix,
        "DEBUG": "1",
        # Its own throttling counters, and room for the many sign-ups of a test module.
        "CACHE_PREFIX": f"t-cache-{secrets.token_hex(4)}",
        "SIGNUP_RATE_PER_IP": "1000/m",
        "LOGIN_RATE_PER_IP": "1000/m",
        **settings,
    }


class WsClient:
    """A browser tab's WebSocket: messages go to `on_message` (default: an awaitable queue).

    A handshake the server refuses leaves `refused` set to its HTTP status."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.on_message: Callable[[dict[str, Any]], None] = self.queue.put_nowait
        self.conn: ClientConnection | None = None
        self.refused: int | None = None
        self.reader: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, port: int, path: str, cookie: str | None, origin: str | None = None) -> WsClient:
        client = cls()
        try:
            client.conn = await connect(
                f"ws://127.0.0.1:{port}{path}",
                origin=Origin(origin or f"http://127.0.0.1:{port}"),
                additional_headers={"Cookie": cookie} if cookie else None,
                compression=None,
                ping_interval=None,
                open_timeout=30,
            )
        except InvalidStatus as exc:
            client.refused = exc.response.status_code
            return client
        client.reader = asyncio.create_task(client._read())
        return client

    async def _read(self) -> None:
        assert self.conn is not None
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.conn:
                self.on_message(json.loads(raw))

    @property
    def close_code(self) -> int | None:
        return None if self.conn is None else self.conn.close_code

    async def wait_closed(self, within: float = 5) -> None:
        if self.reader is not None:
            await asyncio.wait_for(asyncio.shield(self.reader), within)

    async def next(self, within: float = 5) -> dict[str, Any]:
        """The next message, waiting at most `within` seconds."""
        return await asyncio.wait_for(self.queue.get(), within)

    async def send(self, message: dict[str, Any]) -> None:
        assert self.conn is not None
        await self.conn.send(json.dumps(message))

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            await self.wait_closed(10)
