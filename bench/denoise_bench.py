"""Denoise engine benchmark: speed, parallelism, live capacity and memory of DeepFilterNet3.

    python -m bench.denoise_bench [--quick]

Writes the "denoise" section of docs/BENCHMARKS.md. The machine may be shared, so every figure
is a median or percentile over repeated runs, and the section says how loaded the machine was.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import soundfile as sf

from bench.denoise_costs import (
    FRAME,
    PERIOD,
    RATE,
    interleaved_hop_cpu,
    memory_per_stream,
    native_hop_times,
    paced_frame_cpu,
    thread_speedup,
)
from bench.report import write_section
from denoise.engine import DeepFilterNet3, Engine
from denoise.pool import AudioProcessor, ProcessorPool, cpu_count
from denoise.stream import Denoiser
from testing.quality import aligned, pesq_wb, stoi_score

DATA = Path(__file__).resolve().parent.parent / "denoise" / "tests" / "data"
LATE_LIMIT = 0.01  # a capacity counts when under 1% of frames are late
GIVE_UP = 1.0  # seconds behind after which a capacity trial stops feeding a stream


Trial = tuple[int, float, float]  # streams, share of frames late, latency p99 (ms)


@dataclass(frozen=True)
class Settings:
    repeats: int
    capacity_seconds: float
    max_streams: int


def load(name: str) -> np.ndarray:
    samples, _ = sf.read(DATA / name, dtype="int16")
    return samples


def stereo_frames(mono: np.ndarray) -> list[av.AudioFrame]:
    frames = []
    for start in range(0, len(mono) - FRAME + 1, FRAME):
        packed = np.repeat(mono[start : start + FRAME, None], 2, axis=1).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(packed, format="s16", layout="stereo")
        frame.sample_rate, frame.pts = RATE, start
        frames.append(frame)
    return frames


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def single_stream(frames: list[av.AudioFrame], clean: np.ndarray, repeats: int) -> dict[str, float]:
    """Real-time factor of a Denoiser on the whole file, and the native per-hop times."""
    rtfs, cpu_per_frame = [], []
    for _ in range(repeats):
        with Denoiser() as den:
            start, start_cpu = time.perf_counter(), time.thread_time()
            out = [den.process(frame) for frame in frames]
            rtfs.append((time.perf_counter() - start) / (len(frames) * PERIOD))
            cpu_per_frame.append((time.thread_time() - start_cpu) / len(frames))
    left = np.concatenate([f.to_ndarray().reshape(-1, 2)[:, 0] for f in out]) / 32768.0
    ref, deg = aligned(clean / 32768.0, left, DeepFilterNet3.delay_samples)
    hop_ms, hop_cpu_ms = native_hop_times(frames, repeats)
    return {
        "rtf": statistics.median(rtfs),
        "frame_cpu_ms": statistics.median(cpu_per_frame) * 1000,
        "pesq": pesq_wb(ref, deg, RATE),
        "stoi": stoi_score(ref, deg, RATE),
        "hop_cpu_p50": pct(hop_cpu_ms, 50),
        **{f"hop_p{q}": pct(hop_ms, q) for q in (50, 95, 99)},
    }


async def capacity(
    frames: list[av.AudioFrame], settings: Settings, engine_factory: Callable[[], Engine] = DeepFilterNet3
) -> tuple[int, list[Trial]]:
    """Most streams fed in real time on the pool with < 1% of frames late (done > 20 ms after due)."""
    trials: list[Trial] = []
    async with ProcessorPool(engine_factory=engine_factory) as pool:
        processors = [pool.open() for _ in range(settings.max_streams)]
        await asyncio.gather(*(p.process(frames[0]) for p in processors))  # models loaded
        best, low, high = 0, 1, settings.max_streams
        while low <= high:
            count = (low + high) // 2
            late, p99 = await realtime_trial(processors[:count], frames, settings.capacity_seconds)
            trials.append((count, late, p99))
            if late < LATE_LIMIT:
                best, low = count, count + 1
            else:
                high = count - 1
    return best, sorted(trials)


async def realtime_trial(
    processors: list[AudioProcessor], frames: list[av.AudioFrame], seconds: float
) -> tuple[float, float]:
    """Feed each processor one frame per 20 ms (streams staggered); return (late share, p99 ms)."""
    loop = asyncio.get_running_loop()
    count = int(seconds / PERIOD)
    start = loop.time() + 0.05
    latencies: list[float] = []

    async def stream(index: int, processor: AudioProcessor) -> None:
        offset = start + index * PERIOD / len(processors)
        for k in range(count):
            due = offset + k * PERIOD
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            await processor.process(frames[k % len(frames)])
            latencies.append(loop.time() - due)
            if latencies[-1] > GIVE_UP:  # hopelessly behind: the rest would be late too
                latencies.extend([GIVE_UP] * (count - k - 1))
                return

    await asyncio.gather(*(stream(i, p) for i, p in enumerate(processors)))
    late = sum(lat > PERIOD for lat in latencies) / len(latencies)
    return late, pct(latencies, 99) * 1000


def markdown(
    single: dict[str, float],
    speed: tuple[float, float, float],
    cap: int,
    trials: list[Trial],
    mem: float,
    load_start: float,
) -> str:
    t1, t2, ratio = speed
    ceiling = cpu_count() * PERIOD * 1000 / single["frame_cpu_ms"]
    # What a frame costs when its stream's working set has left the cache: streams taking
    # turns back to back (a saturated pool), or frames arriving in real time.
    busy_frame_ms = single["frame_cpu_ms"] + 2 * (single["interleaved_cpu"] - single["hop_cpu_p50"])
    busy_ceiling = cpu_count() * PERIOD * 1000 / busy_frame_ms
    paced_ceiling = cpu_count() * PERIOD * 1000 / single["paced_frame_cpu"]
    hops = " / ".join(f"{single[f'hop_p{q}']:.2f}" for q in (50, 95, 99))
    rows = [
        ("single stream, 20 ms stereo s16 frames: real-time factor (median)", f"{single['rtf']:.3f}", "< 1"),
        ("native hop (10 ms, 480 samples), wall p50 / p95 / p99", f"{hops} ms", ""),
        (
            "native hop, CPU time p50 (unaffected by waiting for a core)",
            f"{single['hop_cpu_p50']:.2f} ms",
            "",
        ),
        (
            "native hop CPU p50 with 12 streams taking turns (cache-cold weights)",
            f"{single['interleaved_cpu']:.2f} ms",
            "",
        ),
        ("CPU per 20 ms frame, whole Denoiser (median)", f"{single['frame_cpu_ms']:.2f} ms", ""),
        (
            "CPU per 20 ms frame, whole Denoiser, fed in real time (one frame per 20 ms)",
            f"{single['paced_frame_cpu']:.2f} ms",
            "",
        ),
        (
            "CPU-bound ceiling, CPUs x 20 ms / CPU per frame: back to back / taking turns / real time",
            f"{ceiling:.0f} / {busy_ceiling:.0f} / {paced_ceiling:.0f} streams",
            "",
        ),
        (
            "4 streams on 1 thread vs 2 threads (median wall)",
            f"{t1:.2f} s vs {t2:.2f} s: **{ratio:.2f}x**",
            ">= 1.6x",
        ),
        ("concurrent real-time 48 kHz streams with < 1% frames late", f"**{cap}**", ">= 20"),
        ("resident memory per open stream", f"{mem:.1f} MB", ""),
        (
            "PESQ-WB / STOI, noisy_snr0.wav vs clean",
            f"{single['pesq']:.2f} / {single['stoi']:.3f}",
            ">= 2.85 / 0.96",
        ),
    ]
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    trial_rows = "\n".join(f"| {n} | {late * 100:.2f}% | {p99:.1f} ms |" for n, late, p99 in trials)
    return f"""
Load average: {load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end, {cpu_count()} CPUs
(other work on the machine competes for the same cores; wall-clock figures suffer first).

| measure | result | goal |
| --- | --- | --- |
{table}

Why the capacity is well below the single-stream figure (0.7 ms a hop, "about 27 streams"):
every libDF state holds its own copy of the model's weights (about 8 MB), so a stream's hop only
runs at that speed while its weights are in the caches. With streams taking turns, or with
frames arriving one per 20 ms on this shared host, they have been evicted by the time the next
frame comes: the rows "taking turns" and "fed in real time" measure that, and the ceilings
computed from them, not the back-to-back one, are what the capacity search approaches. Sharing
one copy of the weights between states would need a change to libDF's C API.

Capacity search (each trial feeds every stream one frame per 20 ms on the shared pool; a frame
is late when its output is ready more than 20 ms after it was due; a trial stops early once a
stream is a second behind, counting its remaining frames late):

| streams | frames late | latency p99 |
| --- | --- | --- |
{trial_rows}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and shorter trials")
    args = parser.parse_args()
    settings = Settings(2, 3.0, 24) if args.quick else Settings(5, 6.0, 32)
    load_start = os.getloadavg()[0]
    frames = stereo_frames(load("noisy_snr0.wav"))
    mem = memory_per_stream(frames)
    single = single_stream(frames, load("clean_freesound_33711.wav"), settings.repeats)
    single["interleaved_cpu"] = interleaved_hop_cpu(frames)
    single["paced_frame_cpu"] = paced_frame_cpu(frames)
    speed = thread_speedup(frames, settings.repeats)
    cap, trials = asyncio.run(capacity(frames, settings))
    body = markdown(single, speed, cap, trials, mem, load_start)
    write_section("denoise", "Denoise engine (DeepFilterNet3)", body)
    print(body)


if __name__ == "__main__":
    main()
