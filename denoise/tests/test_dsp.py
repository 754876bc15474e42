"""The numpy DSP: the constants derived as libDF derives them."""

from __future__ import annotations

import numpy as np

from denoise.dsp import Dsp, erb_widths, norm_alpha

CONFIG = {
    "sr": "48000", "fft_size": "960", "hop_size": "480", "nb_erb": "32", "nb_df": "96",
    "norm_tau": "1", "min_nb_erb_freqs": "2", "df_order": "5", "df_lookahead": "2",
}  # fmt: skip


def test_erb_bands_cover_every_bin_with_at_least_the_minimum():
    widths = erb_widths(48_000, 960, 32, 2)
    assert sum(widths) == 481
    assert min(widths) >= 2
    assert widths[:3] == [2, 2, 2]
    assert widths[-1] > 20


def test_norm_alpha_is_rounded_like_libdf():
    assert norm_alpha(48_000, 480, 1.0) == 0.99


def test_analysis_then_synthesis_reconstructs_the_signal_one_hop_late():
    dsp = Dsp.from_config(CONFIG)
    rng = np.random.default_rng(1)
    signal = rng.standard_normal((2, 480 * 10)).astype(np.float32)
    analysis = np.zeros((2, 480), np.float32)
    synthesis = np.zeros((2, 480), np.float32)
    out = []
    for t in range(10):
        hop = signal[:, t * 480 : (t + 1) * 480]
        spec = dsp.analysis(analysis, hop)
        analysis = hop
        frame, synthesis = dsp.synthesis(spec, synthesis)
        out.append(frame)
    result = np.concatenate(out, axis=1)
    # The Vorbis window is power-complementary at 50% overlap: perfect reconstruction.
    assert np.abs(result[:, 480:] - signal[:, :-480]).max() < 1e-5
