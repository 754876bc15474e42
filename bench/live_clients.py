"""Client processes of the live benchmark: aiortc broadcasters or listeners against a server.

    python -m bench.live_clients '<json spec>'   (started by bench.live_bench)

Spec: {"base_url", "role": "broadcast" | "listen", "peers": [{"key", "owner"?}], "denoise"?}.
Once every peer is connected a JSON line {"joined": n} is printed. The peers stay connected
until a line other than "mark" arrives on stdin; each "mark" prints the listeners' counts so
far (a JSON line), the last line is the results (a broadcaster's include each go-live's
time, POST /api/stream/start/ to its 201).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOISY = ROOT / "denoise" / "tests" / "data" / "noisy_snr0.wav"
GAP_MS = 100


async def run_clients(spec: dict[str, Any]) -> dict[str, Any]:
    from testing import peers

    apis = [peers.HttpApi(spec["base_url"], p["key"]) for p in spec["peers"]]
    pcs: list[Any] = []
    if spec["role"] == "broadcast":
        samples = peers.read_wav(str(NOISY))
        go_live_ms: list[float] = []

        async def go(api: peers.HttpApi) -> None:
            started = time.perf_counter()
            status, body = await api.acall(
                "POST", "/api/stream/start/", {"denoise": spec.get("denoise", True)}
            )
            go_live_ms.append(1000 * (time.perf_counter() - started))  # go-live: POST start -> 201
            assert status == 201, body
            pc, offer = await peers.broadcaster(peers.ArrayTrack(samples, loop=True))
            pcs.append(pc)
            status, answer = await api.acall(
                "POST", "/api/webrtc/offer/", {"session_id": body["session_id"], **offer}
            )
            assert status == 200, answer
            await peers.accept(pc, answer)

        await asyncio.gather(*(go(api) for api in apis))
        print(json.dumps({"joined": len(apis)}), flush=True)
        await _until_told_to_stop(dict)
        await asyncio.gather(*(api.acall("POST", "/api/stream/stop/") for api in apis))
        result: dict[str, Any] = {"streams": len(apis), "go_live_ms": go_live_ms}
    else:
        received: dict[int, list[float]] = {}  # per DTLS transport: packets, gaps, last arrival (ms)
        _count_only(received)

        async def join(api: peers.HttpApi, owner: str) -> None:
            pc, _, _ = await peers.listen_over_http(api, owner, keep=False)
            pcs.append(pc)

        await asyncio.gather(*(join(api, p["owner"]) for api, p in zip(apis, spec["peers"], strict=True)))
        print(json.dumps({"joined": len(apis)}), flush=True)

        def counts() -> dict[str, Any]:
            return {
                "frames": [int(v[0]) for v in received.values()],
                "gaps": [int(v[1]) for v in received.values()],
            }

        await _until_told_to_stop(counts)
        result = counts()
    await asyncio.gather(*(pc.close() for pc in pcs))
    return result


def _count_only(received: dict[int, list[float]]) -> None:
    """Listener clients count the RTP packets they decrypt instead of parsing, buffering and
    decoding them: a hundred full aiortc receivers would eat the cores the server is measured on."""
    from aiortc.rtcdtlstransport import RTCDtlsTransport

    async def count(transport: RTCDtlsTransport, data: bytes, arrival_time_ms: int) -> None:
        stats = received.setdefault(id(transport), [0, 0, 0.0])
        if stats[0] and arrival_time_ms - stats[2] > GAP_MS:
            stats[1] += 1
        stats[0] += 1
        stats[2] = arrival_time_ms

    RTCDtlsTransport._handle_rtp_data = count  # type: ignore[method-assign]


async def _until_told_to_stop(counts: Any) -> None:
    while (await asyncio.to_thread(sys.stdin.readline)).strip() == "mark":
        print(json.dumps(counts()), flush=True)


def start_worker(spec: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.live_clients", json.dumps(spec)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def joined(worker: subprocess.Popen[str]) -> int:
    """Wait until the worker's peers are all connected."""
    assert worker.stdout is not None
    line = worker.stdout.readline()
    if not line:
        raise RuntimeError(f"a client worker failed ({worker.wait()})")
    return int(json.loads(line)["joined"])


def mark(worker: subprocess.Popen[str]) -> dict[str, Any]:
    """The listeners' packet and gap counts so far."""
    assert worker.stdin is not None
    assert worker.stdout is not None
    worker.stdin.write("mark\n")
    worker.stdin.flush()
    return json.loads(worker.stdout.readline())


def finish(worker: subprocess.Popen[str]) -> dict[str, Any]:
    """Tell the worker to hang up and return its results."""
    out, _ = worker.communicate("stop\n", timeout=300)
    if worker.returncode != 0:
        raise RuntimeError(f"a client worker failed ({worker.returncode})")
    return json.loads(out.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run_clients(json.loads(sys.argv[1])))), flush=True)
