"""Speech quality scores used by the tests and the benchmark (PESQ-WB and STOI).

PESQ wide-band is defined at 16 kHz, so both signals are resampled there (soxr) first.
Signals must already be time-aligned; `aligned()` removes a known delay.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import soxr
from pesq import pesq
from pystoi import stoi

PESQ_RATE = 16_000

Signal = npt.NDArray[np.floating]


def aligned(reference: Signal, output: Signal, delay: int) -> tuple[Signal, Signal]:
    """`reference` and `output` cut to the same span, `output` advanced by `delay` samples."""
    shifted = output[delay:]
    length = min(len(reference), len(shifted))
    return reference[:length], shifted[:length]


def pesq_wb(reference: Signal, degraded: Signal, rate: int) -> float:
    """Wide-band PESQ (MOS-LQO, 1.0-4.64) of `degraded` against `reference`."""
    ref = soxr.resample(np.asarray(reference, dtype=np.float64), rate, PESQ_RATE)
    deg = soxr.resample(np.asarray(degraded, dtype=np.float64), rate, PESQ_RATE)
    return float(pesq(PESQ_RATE, ref, deg, "wb"))


def stoi_score(reference: Signal, degraded: Signal, rate: int) -> float:
    """Short-time objective intelligibility (0-1) of `degraded` against `reference`."""
    return float(stoi(np.asarray(reference, dtype=np.float64), np.asarray(degraded, dtype=np.float64), rate))


def heard_pesq(heard: Signal, clean: Signal, rate: int) -> float:
    """PESQ-WB of what a listener heard against the clean speech, once aligned by cross-correlation
    (the network and the engine add a delay nobody knows exactly)."""
    from testing.audio_checks import aligned as aligned_by_lag
    from testing.audio_checks import lag_of

    # A listener that connected before the broadcaster heard silence first, for however long
    # the broadcaster took: search far.
    lag = lag_of(heard, clean, max_lag_s=len(heard) / rate)
    received, reference = aligned_by_lag(heard, clean, lag)
    return pesq_wb(reference, received, rate)
