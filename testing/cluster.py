"""Real Daphne processes on one Redis, and a WebSocket client, for presence tests and the bench.

Used by bench/presence_bench.py and streams/presence/tests/test_processes.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

REPO = Path(__file__).resolve().parent.parent
DAPHNE = REPO / ".venv" / "bin" / "daphne"


@contextlib.contextmanager
def own_redis(folder: Path) -> Iterator[str]:
    """A private redis-server on a unix socket in `folder`; yields its URL."""
    sock = folder / "redis.sock"
    args = ["redis-server", "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no"]
    server = subprocess.Popen([*args, "--dir", str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        for line in server.stdout:  # printed once the socket accepts connections
            if "ready to accept connections" in line.lower():
                break
        else:
            raise RuntimeError("redis-server exited before accepting connections")
        threading.Thread(target=server.stdout.read, daemon=True).start()  # keep the pipe drained
        yield f"unix://{sock}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def database_url(db: dict[str, Any]) -> str:
    """A DATABASE_URL for a Django settings_dict (after the test database was swapped in)."""
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"] or "", safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else "")
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{auth}@{quote(db['HOST'] or '', safe='')}{port}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Daphne:
    """One `daphne fc25_denoise.asgi:application` process on a free port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        args = [str(DAPHNE), "-b", "127.0.0.1", "-p", str(self.port), "fc25_denoise.asgi:application"]
        self.proc = subprocess.Popen(
            args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self._ready = threading.Event()
        threading.Thread(target=self._read_log, daemon=True).start()

    def _read_log(self) -> None:
        assert self.proc.stderr is not None
        with self.log_path.open("w") as log:
            for line in self.proc.stderr:
                log.write(line)
                if "Listening on TCP address" in line:
                    self._ready.set()

    def wait_ready(self, timeout: float = 60) -> None:
        if not self._ready.wait(timeout):
            raise RuntimeError(f"daphne on port {self.port} did not start; see {self.log_path}")

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def cluster_env(redis_url: str, db_url: str, **settings: str) -> dict[str, str]:
    prefix = f"presence-{uuid.uuid4().hex[:8]}"
    return {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "PRESENCE_REDIS_PREFIX": prefix,
        "CHANNELS_PREFIX": prefix,
        "DEBUG": "1",
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
