"""Waveform peaks of a WAV file (no Django here): min/max pairs of its first channel, for pictures.

The file is read in blocks, so a long recording never sits in memory whole. A file still being
written is read up to what its header claims (`wav_file` rewrites the header after the data).
Peaks of a finished file are cached next to it as `<file>.peaks.json`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import TypedDict

import numpy as np
import soundfile as sf

log = logging.getLogger(__name__)

BUCKETS = 800
_BLOCK = 1 << 16  # frames a read: 1.4 s at 48 kHz


class Peaks(TypedDict):
    peaks: list[float]  # min0, max0, min1, max1, ... in [-1, 1]
    buckets: int
    duration_s: float


class PeaksError(ValueError):
    """The file is not audio that soundfile can read."""


def compute_peaks(path: Path, buckets: int = BUCKETS) -> Peaks:
    """Min and max of `buckets` equal slices of the first channel (one slice a frame when shorter).

    Raises OSError (FileNotFoundError...) when the file cannot be opened, PeaksError when it is
    not readable audio.
    """
    with open(path, "rb") as fh:  # opened here so a missing file is an OSError, not a soundfile error
        try:
            with sf.SoundFile(fh.fileno(), closefd=False) as wav:
                frames, rate = wav.frames, wav.samplerate
                lo, hi = _scan(wav, frames, min(buckets, frames))
        except sf.SoundFileRuntimeError as exc:
            raise PeaksError(str(exc)) from exc
    pairs = np.clip(np.stack([lo, hi], axis=1).ravel(), -1.0, 1.0).round(3)
    return {"peaks": pairs.tolist(), "buckets": len(lo), "duration_s": round(frames / rate, 3)}


def _scan(wav: sf.SoundFile, frames: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-bucket (min, max); bucket b holds frames edges[b] to edges[b + 1] - 1."""
    if n == 0:
        return np.zeros(0), np.zeros(0)
    edges = np.arange(n + 1, dtype=np.int64) * frames // n
    lo, hi = np.full(n, np.inf), np.full(n, -np.inf)
    pos = 0
    for block in wav.blocks(_BLOCK, dtype="float32", always_2d=True, frames=frames):
        samples = block[:, 0].astype(np.float64)
        if not len(samples):
            break
        end = pos + len(samples)
        first = int(np.searchsorted(edges, pos, side="right")) - 1
        last = int(np.searchsorted(edges, end - 1, side="right")) - 1
        starts = np.maximum(edges[first : last + 1], pos) - pos  # where each bucket begins in this block
        part = slice(first, last + 1)
        lo[part] = np.minimum(lo[part], np.minimum.reduceat(samples, starts))
        hi[part] = np.maximum(hi[part], np.maximum.reduceat(samples, starts))
        pos = end
    # Buckets never reached (the file shrank while being read) are drawn as silence.
    return np.where(np.isfinite(lo), lo, 0.0), np.where(np.isfinite(hi), hi, 0.0)


def cache_path(wav: Path) -> Path:
    return wav.with_name(f"{wav.name}.peaks.json")


def peaks_of(wav: Path, *, cache: bool) -> Peaks:
    """compute_peaks, through the cache file when `cache` (only for files that no longer change)."""
    if cache and (cached := _read_cache(cache_path(wav))) is not None:
        return cached
    peaks = compute_peaks(wav)
    if cache:
        _write_cache(wav, peaks)
    return peaks


def _read_cache(path: Path) -> Peaks | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # damaged: computed again and replaced
        log.warning("Ignoring the peaks cache %s: %s", path, exc)
        return None
    return data if isinstance(data, dict) and set(data) == set(Peaks.__annotations__) else None


def _write_cache(wav: Path, peaks: Peaks) -> None:
    """Write to a temporary file, then rename: readers never see half a cache."""
    target = cache_path(wav)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(peaks, fh)
        os.replace(tmp, target)
    except OSError as exc:  # the peaks are still served, just computed again next time
        log.warning("Could not cache the peaks of %s: %s", wav, exc)
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        return
    if not wav.exists():  # deleted while we computed: leave no orphan cache behind
        target.unlink(missing_ok=True)
