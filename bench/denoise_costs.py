"""What the engine costs: per native hop (alone, or with streams taking turns), per frame fed in
real time, threads vs one thread, and memory per stream. Used by bench/denoise_bench.py."""

from __future__ import annotations

import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np

from denoise.engine import DeepFilterNet3
from denoise.stream import Denoiser

RATE = 48_000
FRAME = 960  # 20 ms, what aiortc hands a server track
PERIOD = FRAME / RATE


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def model_hops(frames: list[av.AudioFrame]) -> np.ndarray:
    """The frames' left channel as float32 hops of the model's size, one per row."""
    mono = np.concatenate([f.to_ndarray()[0, ::2] for f in frames]).astype(np.float32) / 32768.0
    return mono.reshape(-1, DeepFilterNet3.hop_size)


def native_hop_times(frames: list[av.AudioFrame], repeats: int) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds of each native hop over the file, `repeats` times."""
    hops = model_hops(frames)
    engine, wall, cpu = DeepFilterNet3(), [], []
    for _ in range(repeats):
        state = engine.open()
        for hop in hops:
            start, start_cpu = time.perf_counter(), time.thread_time()
            state.process_hop(hop)
            wall.append((time.perf_counter() - start) * 1000)
            cpu.append((time.thread_time() - start_cpu) * 1000)
        state.close()
    return wall, cpu


def interleaved_hop_cpu(frames: list[av.AudioFrame], streams: int = 12, rounds: int = 60) -> float:
    """Median CPU ms per native hop when `streams` states take turns, two hops (one 20 ms frame)
    each: as on a busy server. Every state holds its own copy of the weights, so each turn
    starts with them out of cache; this, not the single-stream hop, bounds the capacity."""
    hops = model_hops(frames)
    engine = DeepFilterNet3()
    states = [engine.open() for _ in range(streams)]
    per_round = []
    try:
        for r in range(rounds):
            start = time.thread_time()
            for state in states:
                for k in range(2):
                    state.process_hop(hops[(2 * r + k) % len(hops)])
            per_round.append((time.thread_time() - start) * 1000 / (2 * streams))
    finally:
        for state in states:
            state.close()
    return statistics.median(per_round[5:])  # the first rounds warm the states up


def paced_frame_cpu(frames: list[av.AudioFrame], count: int = 200) -> float:
    """Median CPU ms of a Denoiser frame when frames come one per 20 ms, as they do live.

    On this shared machine the model's working set leaves the caches between frames, so a
    paced frame costs far more than one in a back-to-back run of the whole file."""
    with Denoiser() as den:
        for frame in frames[:50]:
            den.process(frame)
        cpu = []
        next_due = time.perf_counter()
        for frame in frames[50 : 50 + count]:
            start = time.thread_time()
            den.process(frame)
            cpu.append((time.thread_time() - start) * 1000)
            next_due += PERIOD
            time.sleep(max(0.0, next_due - time.perf_counter()))
    return statistics.median(cpu)


def thread_speedup(frames: list[av.AudioFrame], repeats: int) -> tuple[float, float, float]:
    """Wall time of 4 streams on 1 worker thread vs 2; returns (t1, t2, median t1/t2)."""
    denoisers = [Denoiser() for _ in range(4)]
    chunk = frames[: int(2 / PERIOD)]
    ones, twos, ratios = [], [], []
    try:
        for _ in range(repeats):
            t1, t2 = (run_on_threads(denoisers, chunk, workers) for workers in (1, 2))
            ones.append(t1)
            twos.append(t2)
            ratios.append(t1 / t2)
    finally:
        for den in denoisers:
            den.close()
    return statistics.median(ones), statistics.median(twos), statistics.median(ratios)


def run_on_threads(denoisers: list[Denoiser], frames: list[av.AudioFrame], workers: int) -> float:
    def feed(den: Denoiser) -> None:
        for frame in frames:
            den.process(frame)

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(feed, denoisers))
    return time.perf_counter() - start


def memory_per_stream(frames: list[av.AudioFrame], count: int = 10) -> float:
    """RSS added per open Denoiser (model state plus buffers), in MB."""
    # Runs first, and keeps a warm-up stream open, so no freed state is there to be reused.
    warm = Denoiser()
    before = rss_mb()
    denoisers = [Denoiser() for _ in range(count)]
    for den in denoisers:
        for frame in frames[:5]:
            den.process(frame)
    grown = (rss_mb() - before) / count
    for den in [warm, *denoisers]:
        den.close()
    return grown
