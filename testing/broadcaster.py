"""A broadcaster in a process of its own, so a test can freeze it (SIGSTOP) like a stalled
browser tab: `python -m testing.broadcaster BASE_URL SESSION_KEY WAV`.

It goes live over the HTTP API with an aiortc peer playing the WAV in a loop, prints one JSON
line {"live": session_id, "first_frame": <CLOCK_MONOTONIC of its first audio frame>} once
audio flows (the clock is the system's, the same in every process), and streams until stdin
closes; then it stops the stream and exits.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from testing import peers

ROOT = Path(__file__).resolve().parents[1]


async def main(base_url: str, session_key: str, wav: str) -> None:
    api = peers.HttpApi(base_url, session_key)
    track = peers.ArrayTrack(peers.read_wav(wav), loop=True)
    pcs: list = []
    try:
        session_id = await peers.go_live_over_http(api, track, pcs)
        await peers.wait_for(lambda: track.started_at is not None, timeout=20)
        print(json.dumps({"live": session_id, "first_frame": track.started_at}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until stdin closes
        await api.acall("POST", "/api/stream/stop/")
    finally:
        for pc in pcs:
            await pc.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))


class BroadcasterProcess:
    """The test's handle on a `python -m testing.broadcaster` child (blocking calls: run them
    in a thread from async code)."""

    def __init__(self, base_url: str, session_key: str, wav: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "testing.broadcaster", base_url, session_key, wav],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def wait_live(self) -> dict[str, Any]:
        """{"live": session id, "first_frame": monotonic time of its first audio frame}."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the broadcaster exited with {self.proc.wait()} before going live")
        return json.loads(line)

    def freeze(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def finish(self, timeout: float = 20) -> int:
        """Close its stdin: it stops its stream and exits; returns its exit status."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()
