"""The signal processing around the DeepFilterNet3 network, in numpy, vectorised over streams.

A port of libDF's Rust (libDF/src/lib.rs: `DFState`, `erb_fb`, `band_mean_norm_erb`,
`band_unit_norm`; libDF/src/tract.rs: `DfTract::process`, `df`, `calc_norm_alpha`), kept
operation for operation so the output matches libDF's to float rounding. Every function takes a
leading batch axis: one Python call per batch, never one per stream (the GIL is shared).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Real = npt.NDArray[np.float32]
Cplx = npt.NDArray[np.complex64]

MEAN_NORM_INIT = (-60.0, -90.0)
UNIT_NORM_INIT = (0.001, 0.0001)


def freq2erb(freq_hz: float) -> float:
    return 9.265 * math.log1p(freq_hz / (24.7 * 9.265))


def erb2freq(n_erb: float) -> float:
    return 24.7 * 9.265 * (math.exp(n_erb / 9.265) - 1.0)


def erb_widths(sr: int, fft_size: int, nb_bands: int, min_nb_freqs: int) -> list[int]:
    """Number of FFT bins in each ERB band (libDF's `erb_fb`)."""
    nyq = sr // 2
    freq_width = sr / fft_size
    low, high = freq2erb(0.0), freq2erb(nyq)
    step = (high - low) / nb_bands
    widths = [0] * nb_bands
    prev, over = 0, 0
    for i in range(1, nb_bands + 1):
        fb = round(erb2freq(low + i * step) / freq_width)
        count = fb - prev - over
        if count < min_nb_freqs:
            over = min_nb_freqs - count
            count = min_nb_freqs
        else:
            over = 0
        widths[i - 1] = count
        prev = fb
    widths[-1] += 1  # the Nyquist bin
    widths[-1] -= sum(widths) - (fft_size // 2 + 1)
    return widths


def norm_alpha(sr: int, hop_size: int, tau: float) -> float:
    """libDF's `calc_norm_alpha`: exp(-hop/sr/tau) rounded to the first precision below 1."""
    alpha = math.exp(-hop_size / sr / tau)
    precision = 3
    rounded = 1.0
    while rounded >= 1.0:
        rounded = round(alpha * 10**precision) / 10**precision
        precision += 1
    return rounded


@dataclass(frozen=True)
class Dsp:
    """Constants of one model configuration and the batched transforms that use them."""

    fft_size: int
    hop_size: int
    nb_erb: int
    nb_df: int
    df_order: int
    lookahead: int
    alpha: np.float32
    window: Real  # (fft,)
    wnorm: np.float32
    widths: tuple[int, ...]
    band_mean: Real  # (freqs, nb_erb): 1/width on each band's bins, for band powers
    band_spread: Real  # (nb_erb, freqs): 1 on each band's bins, for gains

    @classmethod
    def from_config(cls, config: dict[str, str]) -> Dsp:
        sr, fft, hop = int(config["sr"]), int(config["fft_size"]), int(config["hop_size"])
        nb_erb = int(config["nb_erb"])
        widths = erb_widths(sr, fft, nb_erb, int(config["min_nb_erb_freqs"]))
        half = fft // 2
        n = np.arange(fft, dtype=np.float64)
        sin = np.sin(0.5 * np.pi * (n + 0.5) / half)
        window = np.sin(0.5 * np.pi * sin * sin).astype(np.float32)  # Vorbis window
        spread = np.zeros((nb_erb, half + 1), np.float32)
        start = 0
        for band, width in enumerate(widths):
            spread[band, start : start + width] = 1.0
            start += width
        return cls(
            fft_size=fft,
            hop_size=hop,
            nb_erb=nb_erb,
            nb_df=int(config["nb_df"]),
            df_order=int(config["df_order"]),
            lookahead=int(config["df_lookahead"]),
            alpha=np.float32(norm_alpha(sr, hop, float(config["norm_tau"]))),
            window=window,
            wnorm=np.float32(1.0 / (fft**2 / (2 * hop))),
            widths=tuple(widths),
            band_mean=(spread / np.array(widths, np.float32)[:, None]).T.copy(),
            band_spread=spread,
        )

    @property
    def freqs(self) -> int:
        return self.fft_size // 2 + 1

    def initial_mean_norm(self) -> Real:
        return np.linspace(*MEAN_NORM_INIT, self.nb_erb, dtype=np.float32)

    def initial_unit_norm(self) -> Real:
        return np.linspace(*UNIT_NORM_INIT, self.nb_df, dtype=np.float32)

    def analysis(self, memory: Real, hops: Real) -> Cplx:
        """Windowed FFT of the previous and the new hop, scaled like libDF (analysis only)."""
        frames = np.concatenate([memory, hops], axis=1) * self.window
        return (np.fft.rfft(frames, axis=1) * self.wnorm).astype(np.complex64)

    def synthesis(self, spec: Cplx, memory: Real) -> tuple[Real, Real]:
        """Unnormalised inverse FFT, windowed, overlap-added: (output hops, next memory)."""
        frames = (np.fft.irfft(spec, n=self.fft_size, axis=1) * self.fft_size).astype(
            np.float32
        ) * self.window
        hop = self.hop_size
        return frames[:, :hop] + memory, frames[:, hop:].copy()

    def erb_features(self, spec: Cplx, state: Real) -> tuple[Real, Real]:
        """ERB band log-powers, exponentially mean-normalised: (features, next state)."""
        power = spec.real * spec.real + spec.imag * spec.imag
        db = np.log10(power @ self.band_mean + np.float32(1e-10)) * np.float32(10.0)
        state = db * (np.float32(1.0) - self.alpha) + state * self.alpha
        return (db - state) / np.float32(40.0), state

    def complex_features(self, spec: Cplx, state: Real) -> tuple[Cplx, Real]:
        """The low bins, exponentially unit-normalised: (features, next state)."""
        low = spec[:, : self.nb_df]
        state = np.abs(low) * (np.float32(1.0) - self.alpha) + state * self.alpha
        return low / np.sqrt(state), state

    def band_gains(self, gains: Real) -> Real:
        """Per-band gains (B, nb_erb) spread to every bin (B, freqs)."""
        return gains @ self.band_spread

    def deep_filter(self, history: Cplx, coefs: Cplx) -> Cplx:
        """Order-N complex filter over frames t-N+1..t on the low bins: history (B, N, freqs),
        coefs (B, nb_df, N) -> (B, nb_df)."""
        return np.einsum("bkf,bfk->bf", history[:, :, : self.nb_df], coefs)
