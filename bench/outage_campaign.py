"""The outage campaign: each outage of issue 14 against a real deployment (testing/stack.py:
Daphne on a throw-away PostgreSQL and a private Redis, aiortc peers that behave like the pages),
and per scenario what was lost, how long the system took to converge to the truth once the
outage ended, and how many 5xx answers it gave (500s and 503s apart). Writes its section of
docs/RELIABILITY.md.

    scripts/netns-run .venv/bin/python -m bench.outage_campaign [--outage-s 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.report import write_section
from testing import peers
from testing.broadcaster import BroadcasterProcess
from testing.disk import fill, small_disk
from testing.postgres import ThrowawayPostgres
from testing.stack import AppStack, until

DOC = Path(__file__).resolve().parent.parent / "docs" / "RELIABILITY.md"
WAV = str(Path(__file__).resolve().parent.parent / "denoise" / "tests" / "data" / "noisy_snr0.wav")
PEOPLE = (["alice", "bob", "carol"], [("alice", "bob"), ("carol", "bob")])


@dataclass
class Row:
    scenario: str
    lost: str
    converge_s: float | None
    errors: tuple[int, int]  # (500s, 503s)
    notes: str


def errors_since(stack: AppStack, mark: int) -> tuple[int, int]:
    statuses = stack.statuses()[mark:]
    return statuses.count(500), sum(1 for s in statuses if 500 <= s < 600 and s != 500)


async def live(stack: AppStack, pcs: list[Any], user: str = "alice", server: Any = None) -> peers.ArrayTrack:
    track = peers.ArrayTrack(peers.read_wav(WAV), loop=True)
    await peers.go_live_over_http(stack.api(user, server), track, pcs)
    return track


async def message(ws: Any, within: float, **fields: Any) -> float:
    """Seconds until a message with `fields` arrives on `ws` (others skipped)."""
    began = time.monotonic()
    async with asyncio.timeout(within):
        while True:
            got = await ws.next(within)
            if all(got.get(k) == v for k, v in fields.items()):
                return time.monotonic() - began


async def recording(stack: AppStack, user: str = "alice", server: Any = None) -> dict[str, Any]:
    return (await stack.api(user, server).acall("GET", f"/api/recordings/{user}/"))[1][0]


async def postgres_outage(stack: AppStack, outage_s: float) -> Row:
    pcs: list[Any] = []
    bob_ws = await stack.socket("bob")
    await bob_ws.next()
    track = await live(stack, pcs)
    listener, capture, _ = await peers.listen_over_http(stack.api("bob"), "alice", keep=False)
    await peers.wait_for(lambda: capture.count >= 100, timeout=20)
    mark = len(stack.statuses())
    await asyncio.to_thread(stack.pg.stop)
    up_at = time.monotonic() + outage_s
    stop_status = (await stack.api("alice").acall("POST", "/api/stream/stop/"))[0]
    await pcs[0].close()  # the page gives up its connection
    streamed = track.sent_s
    while time.monotonic() < up_at:  # bob's page polls meanwhile
        await stack.api("bob").acall("GET", "/api/presence/")
        await asyncio.sleep(1.0)
    await asyncio.to_thread(stack.pg.start)
    began = time.monotonic()
    await message(bob_ws, 30, type="streaming_status", username="alice", is_streaming=False)
    await until(lambda: _finished(stack), 30, "recording finished")
    rec = await recording(stack)
    status, _ = await stack.api("alice").acall("POST", "/api/stream/start/", {})
    converge = time.monotonic() - began
    await stack.api("alice").acall("POST", "/api/stream/stop/")
    await listener.close()
    return Row(
        f"PostgreSQL stopped {outage_s:g} s while alice is live; she presses Stop during it",
        f"{max(0.0, streamed - rec['duration_s']):.1f} s of recording",
        converge,
        errors_since(stack, mark),
        f"Stop answered {stop_status}; afterwards friends told, row finished, Start answered {status}",
    )


async def _finished(stack: AppStack) -> bool:
    status, rows = await stack.api("alice").acall("GET", "/api/recordings/alice/")
    return status == 200 and bool(rows) and all(r["finished"] for r in rows)


async def redis_restart(stack: AppStack, outage_s: float) -> Row:
    pcs: list[Any] = []
    bob_ws, carol_ws = await stack.socket("bob"), await stack.socket("carol")
    await bob_ws.next()
    await carol_ws.next()
    await live(stack, pcs)
    listener, capture, _ = await peers.listen_over_http(stack.api("bob"), "alice", keep=False)
    await peers.wait_for(lambda: capture.count >= 100, timeout=20)
    gaps_before, heard_before = capture.gaps, capture.count
    mark = len(stack.statuses())
    await asyncio.to_thread(stack.redis.kill)
    down_at = time.monotonic()
    up_at = down_at + outage_s
    await carol_ws.wait_closed(10)  # carol leaves while Redis is down: she does not come back
    while time.monotonic() < up_at:
        await stack.api("bob").acall("GET", "/api/presence/")
        retry = await stack.socket("alice")  # alice's page keeps reconnecting
        await retry.wait_closed(5)
        await asyncio.sleep(1.0)
    heard = (capture.count - heard_before) / ((time.monotonic() - down_at) / 0.02)
    await asyncio.to_thread(stack.redis.start)
    began = time.monotonic()
    alice_ws = await stack.socket("alice")
    await alice_ws.next()
    await until(lambda: _presence_is(stack, {"carol": (False, False), "alice": (True, True)}), 30, "presence")
    await until(lambda: _friends_flags_are(stack, {"carol": False, "alice": True}), 30, "flags")
    converge = time.monotonic() - began
    audio_gaps = capture.gaps - gaps_before
    await stack.api("alice").acall("POST", "/api/stream/stop/")
    await listener.close()
    return Row(
        f"Redis killed, restarted empty {outage_s:g} s later; carol leaves meanwhile",
        f"nothing: the listener got {heard:.0%} of the frames during the outage "
        f"({audio_gaps} arrival gap(s) over {peers.Capture.GAP_S * 1000:.0f} ms)",
        converge,
        errors_since(stack, mark),
        "sockets closed 4011 and reconnected; polls 503 meanwhile; no ghost online afterwards",
    )


async def _presence_is(stack: AppStack, want: dict[str, tuple[bool, bool]]) -> bool:
    status, body = await stack.api("bob").acall("GET", "/api/presence/")
    if status != 200:
        return False
    seen = {f["username"]: (f["is_online"], f["is_streaming"]) for f in body["friends"]}
    return all(seen.get(name) == flags for name, flags in want.items())


async def _friends_flags_are(stack: AppStack, want: dict[str, bool]) -> bool:
    status, friends = await stack.api("bob").acall("GET", "/api/friends/")
    return status == 200 and all(
        next(f["is_online"] for f in friends if f["username"] == name) == flag for name, flag in want.items()
    )


async def disk_full(stack: AppStack, outage_s: float) -> Row:
    pcs: list[Any] = []
    alice_ws = await stack.socket("alice")
    await alice_ws.next()
    track = await live(stack, pcs)
    await peers.wait_for(lambda: track.sent_s >= 3.0, timeout=20)
    mark = len(stack.statuses())
    filler = await asyncio.to_thread(fill, stack.media)
    told = await message(alice_ws, 10, type="recording", reason="storage_full")
    at_full = track.sent_s
    await asyncio.sleep(outage_s)  # live on, without recording
    unrecorded = track.sent_s - at_full
    await stack.api("alice").acall("POST", "/api/stream/stop/")
    rec = await recording(stack)
    files = sorted((stack.media / "recordings" / "alice").glob("*.wav"))
    true_size = rec["size_bytes"] == sum(f.stat().st_size for f in files)
    refused = (await stack.api("alice").acall("POST", "/api/stream/start/", {}))[0]
    rows = len((await stack.api("alice").acall("GET", "/api/recordings/alice/"))[1])
    filler.unlink()
    began = time.monotonic()
    started = (await stack.api("alice").acall("POST", "/api/stream/start/", {}))[0]
    converge = time.monotonic() - began
    await stack.api("alice").acall("POST", "/api/stream/stop/")
    lines = stack.daphne.log().count("stopped after")
    return Row(
        f"MEDIA_ROOT (8 MB tmpfs) filled while alice is live; live on {outage_s:g} s",
        f"the recording after the disk filled ({unrecorded:.0f} s, by design); the stream went on",
        converge,
        errors_since(stack, mark),
        f"told in {told * 1000:.0f} ms; {lines} log line; row size = files: {true_size}; "
        f"start on the full disk {refused}, rows {rows}; once freed, start {started}",
    )


async def sigkill(stack: AppStack, outage_s: float) -> Row:
    pcs: list[Any] = []
    survivor = stack.another_daphne()
    await asyncio.to_thread(survivor.start)
    bob_ws = await stack.socket("bob", server=survivor)
    await bob_ws.next()
    track = await live(stack, pcs)
    await peers.wait_for(lambda: track.sent_s >= 3.0, timeout=20)
    mark = len(survivor_statuses(survivor))
    await asyncio.to_thread(stack.daphne.kill)
    streamed = track.sent_s
    told = await message(bob_ws, 30, type="streaming_status", username="alice", is_streaming=False)
    conflicts = 0
    while (await stack.api("alice", survivor).acall("POST", "/api/stream/start/", {}))[0] == 409:
        conflicts += 1
        await asyncio.sleep(0.2)
    await stack.api("alice", survivor).acall("POST", "/api/stream/stop/")
    rows = (await stack.api("alice", survivor).acall("GET", "/api/recordings/alice/"))[1]
    killed = next(r for r in rows if r["recovered"])
    statuses = survivor_statuses(survivor)[mark:]
    await pcs[0].close()
    return Row(
        "Daphne SIGKILLed while alice is live on it; bob on a second process",
        f"{max(0.0, streamed - killed['duration_s']):.1f} s of recording",
        told,
        (statuses.count(500), sum(1 for s in statuses if 501 <= s < 600)),
        f"friends told after {told:.1f} s; Start on the survivor answered 409 {conflicts} time(s) first",
    )


def survivor_statuses(server: Any) -> list[int]:
    out = []
    for line in server.log_path.read_text(errors="replace").splitlines():
        _, sep, tail = line.rpartition('" ')
        if sep and tail[:3].isdigit():
            out.append(int(tail[:3]))
    return out


async def sigterm(stack: AppStack, outage_s: float) -> Row:
    pcs: list[Any] = []
    bob_ws = await stack.socket("bob")
    await bob_ws.next()
    await live(stack, pcs)
    await bob_ws.next()
    mark = len(stack.statuses())
    proc = stack.daphne.proc
    assert proc is not None
    began = time.monotonic()
    proc.terminate()
    told = await message(bob_ws, 10, type="server_restarting")
    await asyncio.to_thread(proc.wait, 30)
    exited = time.monotonic() - began
    errors = errors_since(stack, mark)
    await asyncio.to_thread(stack.daphne.start)  # what systemd does next
    downtime = time.monotonic() - began
    rec = await recording(stack)
    await pcs[0].close()
    return Row(
        "SIGTERM while alice is live (a restart under systemd)",
        "nothing (the recording finished by the stopping process)" if not rec["recovered"] else "recovered",
        downtime,
        errors,
        f"clients told after {told * 1000:.0f} ms; process gone after {exited:.2f} s; "
        f"serving again {downtime:.1f} s after the signal",
    )


async def sigstop(stack: AppStack, outage_s: float) -> Row:
    page = await stack.socket("bob", "/ws/stream/alice/")
    await page.next()
    child = BroadcasterProcess(stack.daphne.base_url, stack.sessions["alice"], WAV)
    try:
        first = (await asyncio.to_thread(child.wait_live))["first_frame"]
        await asyncio.sleep(3.0)
        child.freeze()
        told = await message(page, 15, type="source", state="stalled")
        await asyncio.sleep(max(0.0, outage_s - told))
        child.resume()
        back = await message(page, 15, type="source", state="ok")
        await asyncio.sleep(2.0)
        done = asyncio.create_task(asyncio.to_thread(child.finish))
        await message(page, 15, type="streaming_status", is_streaming=False)
        wall = time.monotonic() - first
        await done
    finally:
        await asyncio.to_thread(child.kill)
    rec = await recording(stack)
    return Row(
        f"The broadcaster's process SIGSTOPped {outage_s:g} s",
        f"nothing; recording {rec['duration_s']:.1f} s for {wall:.1f} s of wall time",
        back,
        (0, 0),
        f"listeners told it stalled after {told:.1f} s, back after {back:.1f} s; the gap kept as silence",
    )


async def healthz_under_load(stack: AppStack, outage_s: float) -> Row:
    sockets = [await stack.socket(name) for name in stack.sessions]
    for ws in sockets:
        await ws.next()
    times, statuses = [], []
    for _ in range(20):
        began = time.monotonic()
        status, _ = await stack.api("user0").acall("GET", "/healthz")
        times.append((time.monotonic() - began) * 1000)
        statuses.append(status)
    for ws in sockets:
        await ws.close()
    return Row(
        f"/healthz with {len(sockets)} presence sockets open",
        "nothing",
        None,
        (statuses.count(500), sum(1 for s in statuses if s > 500)),
        f"20 checks: median {statistics.median(times):.0f} ms, max {max(times):.0f} ms, all {set(statuses)}",
    )


SCENARIOS: list[tuple[str, Callable[[AppStack, float], Awaitable[Row]], tuple[list[str], list[Any]]]] = [
    ("postgres", postgres_outage, PEOPLE),
    ("redis", redis_restart, PEOPLE),
    ("disk", disk_full, PEOPLE),
    ("sigkill", sigkill, PEOPLE),
    ("sigterm", sigterm, PEOPLE),
    ("sigstop", sigstop, PEOPLE),
    ("healthz", healthz_under_load, ([f"user{i}" for i in range(50)], [])),
]


async def run(outage_s: float, only: list[str]) -> list[Row]:
    rows = []
    pg = ThrowawayPostgres()
    pg.start()
    try:
        with tempfile.TemporaryDirectory(prefix="rd-campaign-") as tmp:
            for name, scenario, (users, friendships) in SCENARIOS:
                if only and name not in only:
                    continue
                stack = AppStack(Path(tmp) / name, users, friendships, pg=pg)
                try:
                    if name == "disk":
                        with small_disk(stack.media, 8 * 1024 * 1024):
                            stack.daphne.start()
                            rows.append(await scenario(stack, outage_s))
                            stack.daphne.stop()
                    else:
                        stack.daphne.start()
                        rows.append(await scenario(stack, outage_s))
                finally:
                    stack.close()
                print(rows[-1], flush=True)
    finally:
        pg.close()
    return rows


def table(rows: list[Row]) -> str:
    lines = [
        "| scenario | lost | converged after the outage | 500s | 503s | what happened |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        converge = "n/a" if r.converge_s is None else f"{r.converge_s:.1f} s"
        lines.append(f"| {r.scenario} | {r.lost} | {converge} | {r.errors[0]} | {r.errors[1]} | {r.notes} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outage-s", type=float, default=10.0, help="how long each outage lasts")
    parser.add_argument("--only", nargs="*", default=[], help=f"some of: {[n for n, _, _ in SCENARIOS]}")
    args = parser.parse_args()
    rows = asyncio.run(run(args.outage_s, args.only))
    body = table(rows)
    print(body)
    if not args.only:
        write_section("outage-campaign", "Outage campaign (bench/outage_campaign.py)", body, doc=DOC)


if __name__ == "__main__":
    main()
