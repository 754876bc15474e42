"""Native model state is freed: opening and closing many Denoisers does not grow the process."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from denoise.engine import DeepFilterNet3
from denoise.stream import Denoiser

# The figure. Each Denoiser compiles the model (~0.35 s of CPU), so this is the
# slowest engine test (~70 s on 2 cores); a leak of even 1% of a state would show.
CYCLES = 200
ALLOWED_GROWTH_MB = 8.0


def _rss_mb() -> float:
    """Resident size after handing free heap pages back to the OS (glibc keeps them otherwise)."""
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        libc = ctypes.CDLL(libc_name)
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)
    resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _open_and_close(engine: DeepFilterNet3) -> None:
    with Denoiser(engine=engine):
        pass


def test_opening_and_closing_denoisers_keeps_rss_flat():
    engine = DeepFilterNet3()
    workers = min(2, os.cpu_count() or 1)  # model loading is CPU-bound and drops the GIL
    samples = []
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(_open_and_close, [engine] * 2 * workers))  # let the allocator reach its size
        for _ in range(CYCLES // workers):
            list(pool.map(_open_and_close, [engine] * workers))
            samples.append(_rss_mb())
    # Allocator noise only ever adds to RSS (up to a state's size), while a leak lifts the floor:
    # compare the floors of the two halves of the run.
    half = len(samples) // 2
    growth = min(samples[half:]) - min(samples[:half])
    assert growth < ALLOWED_GROWTH_MB, f"RSS grew {growth:.1f} MB over {CYCLES} Denoisers: {samples}"
