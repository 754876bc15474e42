"""A throw-away Janus for tests and benches, rendered from the shipped deploy/janus/ templates.

Started inside scripts/netns-run (its ICE candidates are the namespace's addresses), on a free
port of 127.0.0.1 with fresh secrets; stopped (or SIGKILLed by a test) afterwards, and by the
kernel if the test process dies first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from aiortc import RTCPeerConnection

from streams.live.opus import OpusEncoder
from streams.sfu.janus_config import JanusOptions, janus_values, write_janus_config
from streams.sfu.rtp import RtpSender
from testing.peers import Capture, listener
from testing.processes import die_with_parent, free_port, wait_until

START_TIMEOUT_S = 15.0
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class JanusServer:
    url: str
    api_secret: str
    admin_key: str
    folder: Path
    proc: subprocess.Popen[bytes]

    @property
    def log(self) -> Path:
        return self.folder / "janus.log"

    def env(self) -> dict[str, str]:
        """The app's settings for this Janus (for a Daphne subprocess's environment)."""
        return {"JANUS_URL": self.url, "JANUS_API_SECRET": self.api_secret, "JANUS_ADMIN_KEY": self.admin_key}

    def info(self) -> dict[str, object]:
        with urllib.request.urlopen(self.url + "/info", timeout=2) as response:  # noqa: S310 - our test server
            return json.loads(response.read())

    def answers(self) -> bool:
        try:
            return self.info().get("janus") == "server_info"
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS

    def kill(self) -> None:
        """SIGKILL, as a crash: no session is told."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def start_janus(folder: Path, *, session_timeout_s: int = 60, like: JanusServer | None = None) -> JanusServer:
    """Render the templates into `folder` and start Janus; returns once its API answers.
    `like`: the same address and secrets as that (dead) one, as a restarted Janus."""
    if like is not None:
        url, api_secret, admin_key = like.url, like.api_secret, like.admin_key
    else:
        url = f"http://127.0.0.1:{free_port()}/janus"
        api_secret, admin_key = secrets.token_hex(16), secrets.token_hex(16)
    values = janus_values(
        janus_url=url,
        api_secret=api_secret,
        admin_key=admin_key,
        ice_servers=[],
        configs_folder=str(folder),
        options=JanusOptions(session_timeout_s=session_timeout_s, debug_level=4),
    )
    write_janus_config(folder, values)
    log = (folder / "janus.log").open("ab")
    proc = subprocess.Popen(
        ["janus", "--config", str(folder / "janus.jcfg"), "--configs-folder", str(folder)],
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )
    log.close()
    server = JanusServer(url, api_secret, admin_key, folder, proc)
    try:
        wait_until(lambda: proc.poll() is not None or server.answers(), START_TIMEOUT_S, "janus")
        if proc.poll() is not None:
            raise RuntimeError(f"janus exited with {proc.returncode}; see {server.log}")
    except BaseException:  # any failure, cancellation included: undo, then re-raise
        server.kill()
        raise
    return server


@contextlib.contextmanager
def janus_running(folder: Path, **kwargs: object) -> Iterator[JanusServer]:
    server = start_janus(folder, **kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


# --- clients of a Janus mountpoint (tests and benches) ---
async def viewer(offer: dict[str, str], *, keep: bool = True) -> tuple[RTCPeerConnection, str, Capture]:
    """An aiortc peer answering Janus's offer: (pc, answer SDP, capture)."""
    pc, answer, capture = await listener(offer, keep=keep)
    return pc, answer["sdp"], capture


def tone_frames(seconds: float, hz: float = 440.0, level: float = 0.25) -> list[np.ndarray]:
    """20 ms blocks (mono float32, 48 kHz) of a sine tone."""
    n = int(seconds * 50)
    t = np.arange(n * 960) / 48_000
    samples = (np.sin(2 * np.pi * hz * t) * level).astype(np.float32)
    return [samples[i * 960 : (i + 1) * 960] for i in range(n)]


async def play_rtp(sender: RtpSender, frames: list[np.ndarray]) -> None:
    """Encode `frames` once (Opus) and send them to a mountpoint in real time."""
    encoder = OpusEncoder()
    start = time.monotonic()
    for i, frame in enumerate(frames):
        for data in encoder.encode(frame):
            sender.send(data)
        await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))


def dominant_hz(samples: np.ndarray, rate: int = 48_000) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])
