"""Two aiortc clients against a real server: alice goes live with a noisy file, bob listens.

    make demo            (scripts/netns-run .venv/bin/python scripts/live_demo.py --out demo-out)

A throw-away daphne serves the app on a temporary SQLite database with the demo users. Both
clients sign in through the login form like a browser, then use the JSON API: alice starts a
stream and sends `denoise/tests/data/noisy_snr0.wav` in real time over WebRTC; bob listens.
Afterwards bob's ears (`heard.wav`) and alice's recording (`recording.wav`) are written to
--out and scored against the clean original (wide-band PESQ, as in docs/BENCHMARKS.md; also
in scores.json).
Run it inside scripts/netns-run: media must not leave the private network namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import http.cookiejar
import json
import logging
import os
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

import django
import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fc25_denoise.settings")
django.setup()  # the test helpers below import Django models
logging.getLogger("aioice").setLevel(logging.WARNING)  # one line per ICE check otherwise

from testing import audio_checks, peers  # noqa: E402
from testing.daphne import DaphneServer  # noqa: E402
from testing.quality import pesq_wb  # noqa: E402
from users.management.commands.seed_demo import DEMO_PASSWORD  # noqa: E402

DATA = ROOT / "denoise" / "tests" / "data"


class DemoError(RuntimeError):
    """A step of the demo got an answer other than the one it needs."""


def sign_in(base_url: str, username: str) -> str:
    """Log in through /accounts/login/ as a browser would; returns the session key."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(base_url + "/accounts/login/", timeout=30).close()
    csrf = next(c.value for c in jar if c.name == "csrftoken")
    form = {"username": username, "password": DEMO_PASSWORD, "csrfmiddlewaretoken": csrf}
    opener.open(base_url + "/accounts/login/", urllib.parse.urlencode(form).encode(), timeout=30).close()
    for cookie in jar:
        if cookie.name == "sessionid":
            return cookie.value
    raise DemoError(f"{username} could not sign in (did seed_demo run?)")


async def call(api: peers.HttpApi, method: str, path: str, body: dict | None, expect: int) -> dict:
    status, answer = await api.acall(method, path, body)
    if status != expect:
        raise DemoError(f"{method} {path}: expected HTTP {expect}, got {status}: {answer}")
    return answer


async def stream_and_listen(base_url: str, noisy: np.ndarray) -> np.ndarray:
    """alice goes live, bob listens from the first frame; returns what bob heard (float mono)."""
    alice = peers.HttpApi(base_url, await asyncio.to_thread(sign_in, base_url, "alice"))
    bob = peers.HttpApi(base_url, await asyncio.to_thread(sign_in, base_url, "bob"))
    started = await call(alice, "POST", "/api/stream/start/", {"denoise": True}, 201)
    print(f"alice is live (session {started['session_id'][:8]}…)")
    offer = await call(bob, "POST", "/api/webrtc/listen/alice/", {}, 200)
    bob_pc, answer, capture = await peers.listener(offer)
    body = {"listener_id": offer["listener_id"], **answer}
    await call(bob, "POST", "/api/webrtc/listen/alice/answer/", body, 200)
    track = peers.ArrayTrack(noisy)
    alice_pc, offer = await peers.broadcaster(track)
    body = {"session_id": started["session_id"], **offer}
    await peers.accept(alice_pc, await call(alice, "POST", "/api/webrtc/offer/", body, 200))
    print(f"bob is listening; sending {len(noisy) / peers.RATE:.1f} s of noisy speech in real time…")
    tail = int(0.5 * peers.RATE)  # the engine's delay and the network's, with room to spare
    await peers.wait_for(lambda: capture.count * peers.FRAME >= len(noisy) + tail, timeout=60)
    await call(alice, "POST", "/api/stream/stop/", None, 200)
    await capture.stop()
    await asyncio.gather(alice_pc.close(), bob_pc.close())
    return capture.audio()


async def fetch_recording(base_url: str) -> tuple[dict, bytes]:
    """alice's newest recording: its JSON entry and its WAV file."""
    key = await asyncio.to_thread(sign_in, base_url, "alice")
    rows = await call(peers.HttpApi(base_url, key), "GET", "/api/recordings/alice/", None, 200)
    if not rows:
        raise DemoError("alice has no recording")
    return rows[0], await asyncio.to_thread(download, base_url + rows[0]["audio_url"], key)


def download(url: str, session_key: str) -> bytes:
    request = urllib.request.Request(url, headers={"Cookie": f"sessionid={session_key}"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our own server
        return response.read()


def score(label: str, audio: np.ndarray, clean: np.ndarray) -> float:
    """Wide-band PESQ of `audio` against the clean speech, once aligned by cross-correlation."""
    lag = audio_checks.lag_of(audio, clean)
    received, reference = audio_checks.aligned(audio, clean, lag)
    value = pesq_wb(reference, received, peers.RATE)
    print(f"  {label:<28} PESQ-WB {value:.2f}   (lag {1000 * lag / peers.RATE:.0f} ms)")
    return value


def serve(workdir: Path) -> DaphneServer:
    env = {
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{workdir / 'demo.sqlite3'}",
        "REDIS_URL": "",
        "MEDIA_ROOT": str(workdir / "media"),
    }
    for command in (["migrate", "--noinput"], ["seed_demo"]):
        subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env={**os.environ, **env},
            check=True,
            stdout=subprocess.DEVNULL,
        )
    server = DaphneServer(env, workdir / "daphne.log")
    server.start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "demo-out", help="where the WAVs go")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    noisy = peers.read_wav(str(DATA / "noisy_snr0.wav"))
    clean = peers.read_wav(str(DATA / "clean_freesound_33711.wav")).astype(np.float32) / 32768
    with tempfile.TemporaryDirectory() as tmp:
        server = serve(Path(tmp))
        try:
            heard = asyncio.run(stream_and_listen(server.base_url, noisy))
            row, wav = asyncio.run(fetch_recording(server.base_url))
        finally:
            server.stop()
    sf.write(args.out / "heard.wav", heard, peers.RATE, subtype="PCM_16")
    (args.out / "recording.wav").write_bytes(wav)
    recorded, _ = sf.read(args.out / "recording.wav", dtype="float32")
    print(f"bob heard {len(heard) / peers.RATE:.1f} s; alice's recording is {row['duration_s']:.1f} s")
    print("Against the clean speech:")
    scores = {
        "noisy": score("the noisy input", noisy.astype(np.float32) / 32768, clean),
        "heard": score("what bob heard (Opus, live)", heard, clean),
        "recording": score("alice's recording", recorded, clean),
    }
    (args.out / "scores.json").write_text(json.dumps({"pesq_wb": scores, "recording": row}, indent=1))
    print(f"Listen: {args.out / 'heard.wav'} and {args.out / 'recording.wav'}")


if __name__ == "__main__":
    main()
