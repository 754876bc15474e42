"""Where a live broadcast's server CPU goes: py-spy samples of the bench's daphne, by stage.

    scripts/netns-run .venv/bin/python -m bench.live_profile [--seconds S] [--compare OTHER_CHECKOUT]

One denoised broadcast with one listener (the live bench's clients) on a real `daphne`; after a
warm-up, `py-spy record --format raw` (idle samples off, every thread, non-blocking so the
server is not paused) samples it while /proc measures its CPU. Each sample is charged to the
stage of its innermost recognised frame (STAGES); the stage's share of the samples times the
measured CPU is its cost in cores. With `--compare`, OTHER_CHECKOUT's server is profiled in the
same run, alternating, and the table has both. Writes the "live-profile" section.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.live_bench import latency_p, make_people, prepare_database, snapshot, wait_live
from bench.live_clients import finish, start_worker

# (stage, pattern on "function (file:line)"), innermost frame first: the first frame of a
# stack that matches any pattern decides the stage.
STAGES: list[tuple[str, str]] = [
    ("Opus encode", r"streams/live/opus\.py|silence_packet"),
    ("Opus decode", r"aiortc/codecs/opus\.py.*\(|decoder_worker"),
    ("engine", r"denoise/|onnxruntime"),
    ("recorder", r"streams/recordings/"),
    ("format conversion", r"EntryConverter|Blocks|streams/live/pipeline\.py"),
    # aiortc's UDP send (a listener's packets, mostly; RTCP reports are a few a second)
    ("listener send", r"^(sendto|send_data|send) \(.*aioice|rtcrtpsender|streams/live/tracks\.py|_send_rtp"),
    ("listener send", r"streams/live/fanout\.py"),
    ("RTP receive + SRTP", r"rtcrtpreceiver|_recv_next|_handle_rtp_data|_handle_rtcp_data|aioice|rtcsctp"),
    ("event loop + other", r"."),
]
ORDER = list(dict.fromkeys(name for name, _ in STAGES))
_RULES = [(name, re.compile(pattern)) for name, pattern in STAGES]
_LINE = re.compile(r"^(.*) (\d+)$")
_THREAD = re.compile(r"^thread \((\d+)\)")
_TICKS = os.sysconf("SC_CLK_TCK")

Shares = dict[str, Counter[str]]  # native thread id -> samples per stage


def classify(raw: str) -> Shares:
    """Samples per stage, per thread, from py-spy's raw (collapsed, --threads) output."""
    shares: Shares = {}
    for line in raw.splitlines():
        match = _LINE.match(line.strip())
        if not match:
            continue
        frames = match.group(1).split(";")
        thread = _THREAD.match(frames[0])
        counts = shares.setdefault(thread.group(1) if thread else "?", Counter())
        stage = ORDER[-1]
        for frame in reversed(frames):  # innermost first
            found = next((name for name, rule in _RULES if name != ORDER[-1] and rule.search(frame)), None)
            if found:
                stage = found
                break
        counts[stage] += int(match.group(2))
    return shares


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of each of the process's threads, by native thread id."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        out[task.name] = (int(fields[11]) + int(fields[12])) / _TICKS
    return out


def profile(server: Any, seconds: float, out: Path) -> tuple[Counter[str], float, float]:
    """Cores per stage and the server's CPU (cores) over `seconds`.

    Sampling says where a thread's time goes, but not its CPU time on a loaded machine (a thread
    waiting for a core counts as busy), so each thread's CPU comes from /proc and is split by
    that thread's own samples; a thread with CPU but no samples goes to the last stage."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    pid = server.proc.pid
    before = snapshot(server)
    cpu0, threads0, t0 = server.cpu_seconds(), thread_cpu(pid), time.monotonic()
    subprocess.run(
        [spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
         "--format", "raw", "--nonblocking", "--threads", "--output", str(out)],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    threads1, t1 = thread_cpu(pid), time.monotonic()
    cores = (server.cpu_seconds() - cpu0) / (t1 - t0)
    p95_ms = 1000 * latency_p(before, snapshot(server), 0.95)
    keep = Path(tempfile.gettempdir()) / "live-profile-last"
    keep.mkdir(exist_ok=True)
    shutil.copy(out, keep / out.name)  # the raw stacks, for a closer look (flamegraph tools read them)
    shares = classify(out.read_text())
    stages: Counter[str] = Counter()
    for tid, used in threads1.items():
        thread_cores = (used - threads0.get(tid, 0.0)) / (t1 - t0)
        counts = shares.get(tid)
        if not counts:
            stages[ORDER[-1]] += thread_cores
            continue
        total = sum(counts.values())
        for stage, n in counts.items():
            stages[stage] += thread_cores * n / total
    return stages, cores, p95_ms


def table(results: dict[str, dict[str, float]]) -> list[str]:
    names = list(results)
    lines = [
        "| stage | " + " | ".join(f"{n}: cores per broadcast" for n in names) + " |",
        "| --- |" + " --- |" * len(names),
    ]
    for stage in ORDER:
        cells = []
        for n in names:
            cells.append(f"{results[n][stage]:.3f}")
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    for label, pick in (("non-engine part", lambda s: s != "engine"), ("whole broadcast", lambda s: True)):
        cells = []
        for n in names:
            cells.append(f"**{sum(c for s, c in results[n].items() if pick(s)):.3f}**")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--go-lives", type=int, default=4, help="extra go-lives per round and server")
    parser.add_argument("--compare", type=Path, metavar="CHECKOUT", help="also profile CHECKOUT's server")
    parser.add_argument("--label", default="before", help="what CHECKOUT is, for the table")
    args = parser.parse_args()

    from testing.daphne import DaphneServer

    start_load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="live-profile-") as tmp:
        env = prepare_database(Path(tmp))
        keys = make_people(broadcasters=1, listeners=1, fans=0)
        servers = {"after" if args.compare else "this checkout": DaphneServer(env, Path(tmp) / "a.log")}
        if args.compare:
            servers = {
                args.label: DaphneServer(env, Path(tmp) / "b.log", root=args.compare.resolve()),
                **servers,
            }
        totals: dict[str, list[tuple[Counter[str], float]]] = {n: [] for n in servers}
        p95: dict[str, list[float]] = {n: [] for n in servers}
        go_live: dict[str, list[float]] = {n: [] for n in servers}
        try:
            for server in servers.values():
                server.start()
            for r in range(args.rounds):
                for name in list(servers) if r % 2 == 0 else list(servers)[::-1]:
                    server = servers[name]
                    b = start_worker(
                        {"base_url": server.base_url, "role": "broadcast", "peers": [{"key": keys["b0"]}]}
                    )
                    wait_live(server, 1, 0)
                    lw = start_worker(
                        {
                            "base_url": server.base_url,
                            "role": "listen",
                            "peers": [{"key": keys["l0"], "owner": "b0"}],
                        }
                    )
                    wait_live(server, 1, 1)
                    time.sleep(4)  # warm-up
                    stages, cores, p95_ms = profile(server, args.seconds, Path(tmp) / f"{name}-{r}.txt")
                    totals[name].append((stages, cores))
                    p95[name].append(p95_ms)
                    print(f"round {r} {name}: {cores:.3f} cores, {dict(stages)}", flush=True)
                    finish(lw)
                    go_live[name] += finish(b)["go_live_ms"]
                    wait_live(server, 0, 0)
                    for _ in range(args.go_lives):  # more go-lives, each a fresh stream
                        b = start_worker(
                            {"base_url": server.base_url, "role": "broadcast", "peers": [{"key": keys["b0"]}]}
                        )
                        wait_live(server, 1, 0)
                        go_live[name] += finish(b)["go_live_ms"]
                        wait_live(server, 0, 0)
        finally:
            for server in servers.values():
                server.stop()
    import numpy as np

    results = {
        n: {stage: float(np.median([st[stage] for st, _ in rounds])) for stage in ORDER}
        for n, rounds in totals.items()
    }
    measured = {n: float(np.median([c for _, c in rounds])) for n, rounds in totals.items()}
    body = "\n".join(
        [
            f"Load average {start_load:.2f} at the start and {os.getloadavg()[0]:.2f} at the end on "
            f"{os.cpu_count()} CPUs shared with other jobs; the aiortc clients use the same cores.",
            f"1 denoised broadcast with 1 listener, {args.rounds} rounds of {args.seconds:g} s per server "
            "(alternating), py-spy 200 Hz, idle samples off. Each thread's CPU (user + system, /proc) is "
            "split by that thread's own samples; a stage's figure is the median over rounds. Whole "
            "process CPU measured meanwhile: "
            + ", ".join(f"{n} {c:.3f} cores" for n, c in measured.items())
            + ".",
            "",
            *table(results),
            "",
            "Server-added latency p95 (incl. the engine's 30 ms; goal <= 50 ms), per round: "
            + "; ".join(f"{n}: " + ", ".join(f"{v:.0f} ms" for v in vs) for n, vs in p95.items())
            + ".",
            "",
            "Go-live (POST /api/stream/start/ -> 201, timed by the broadcaster client; goal p50 <= 150 ms): "
            + "; ".join(
                f"{n}: p50 **{np.median(v):.0f} ms**, p95 {np.percentile(v, 95):.0f} ms over {len(v)}"
                for n, v in go_live.items()
            )
            + ".",
            "",
            "Stages by the innermost recognised frame: engine = denoise/ and onnxruntime (its batcher "
            "thread), RTP receive + SRTP = aiortc's receiver, DTLS transport's receive path and ICE; "
            "listener send = the listener's track, aiortc's sender and its SRTP protect; event loop + "
            "other = asyncio's own scheduling and everything not named above (metrics, Django).",
        ]
    )
    print(body)
    from bench.report import write_section

    write_section("live-profile", "Live path: where a broadcast's CPU goes (py-spy)", body)


if __name__ == "__main__":
    main()
