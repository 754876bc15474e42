"""Signal measures for the live tests: alignment by cross-correlation, envelopes, energies."""

from __future__ import annotations

import fractions

import av
import numpy as np
from scipy import signal

from denoise.stream import Denoiser

RATE = 48_000
WINDOW = 960  # 20 ms


def offline_denoise(samples: np.ndarray, *, enabled: bool = True) -> np.ndarray:
    """The engine's output for `samples` (mono int16), fed as aiortc delivers: 20 ms s16 stereo."""
    out = []
    with Denoiser(enabled=enabled) as denoiser:
        for i in range(0, len(samples) - WINDOW + 1, WINDOW):
            chunk = np.repeat(samples[i : i + WINDOW, None], 2, axis=1).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
            frame.sample_rate = RATE
            frame.pts = i
            frame.time_base = fractions.Fraction(1, RATE)
            out.append(denoiser.process(frame).to_ndarray().reshape(-1, 2)[:, 0])
    return np.concatenate(out).astype(np.float32) / 32768.0


def lag_of(received: np.ndarray, reference: np.ndarray, max_lag_s: float = 3.0) -> int:
    """Samples by which `received` lags `reference` (best full cross-correlation peak)."""
    corr = signal.correlate(received, reference, mode="full", method="fft")
    lags = signal.correlation_lags(len(received), len(reference), mode="full")
    keep = np.abs(lags) <= int(max_lag_s * RATE)
    return int(lags[keep][np.argmax(corr[keep])])


def aligned(received: np.ndarray, reference: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """The overlapping parts of the two signals once `received` is shifted back by `lag`."""
    if lag >= 0:
        received = received[lag:]
    else:
        reference = reference[-lag:]
    n = min(len(received), len(reference))
    return received[:n], reference[:n]


def chunk_lags(
    received: np.ndarray, reference: np.ndarray, chunk_s: float = 1.0, search_s: float = 0.3
) -> list[int]:
    """The lag of each `chunk_s` piece of `received` behind `reference`: the global lag refined
    per chunk within +-`search_s`, so frames a loaded server dropped do not spoil the whole
    comparison (each drop shifts the rest of the stream by its length)."""
    base = lag_of(received, reference)
    chunk, search = int(chunk_s * RATE), int(search_s * RATE)
    lags = []
    for start in range(0, len(received) - chunk + 1, chunk):
        piece = received[start : start + chunk]
        lo = max(0, start - base - search)
        window = reference[lo : start - base + chunk + search]
        if len(window) < chunk or not np.any(piece):
            lags.append(lags[-1] if lags else base)
            continue
        corr = signal.correlate(window, piece, mode="valid", method="fft")
        lags.append(start - (lo + int(np.argmax(corr))))
    return lags


def chunk(x: np.ndarray, start: int, length: int) -> np.ndarray | None:
    """x[start:start+length] when it lies wholly inside x."""
    return x[start : start + length] if start >= 0 and start + length <= len(x) else None


def envelope(x: np.ndarray) -> np.ndarray:
    """RMS per 20 ms window."""
    n = len(x) // WINDOW
    return np.sqrt(np.mean(x[: n * WINDOW].reshape(n, WINDOW).astype(np.float64) ** 2, axis=1))


def db(x: np.ndarray | float) -> np.ndarray | float:
    return 20 * np.log10(np.maximum(x, 1e-9))


def energy_db(x: np.ndarray) -> float:
    return float(db(np.sqrt(np.mean(x.astype(np.float64) ** 2))))
