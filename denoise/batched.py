"""`BatchedDeepFilterNet3`: DeepFilterNet3 on onnxruntime, one copy of the weights for every
stream, many streams per call.

The streamable graph (denoise.graph) carries each stream's recurrent state explicitly; the DSP
(denoise.dsp) is numpy over the batch. `process()` runs one hop of each of B streams as one
network call; `BatchedState.process_hop()` is the same call with B = 1, so the engine also serves
the plain `Engine` interface. The per-hop logic follows libDF's `DfTract::process` (tract.rs):
the silence skip, gains on frame t-2, the deep filter over t-4..t, and the attenuation limit.
libDF's C API sets the stage thresholds on the local SNR to -15/35/35 dB (capi.rs), the bounds
of the network's SNR output, so both decoders always run: the whole graph runs every hop. For the
same reason libDF's silence skip never fires through the C API (every hop's gains reset its
count of quiet hops); digital silence in still gives silence out.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from denoise import graph
from denoise.dsp import Cplx, Dsp, Real
from denoise.engine import ATTEN_LIM_MAX_DB, validate_atten_lim
from denoise.exceptions import EngineError, StreamClosedError

# As with libDF (see denoise.engine): below 0.01 dB libDF would bypass the delay; clamp instead.
MIN_ATTEN_DB = 0.01


def attenuation_mix(db: float) -> float:
    """The share of the noisy spectrum mixed back in for a limit of `db` (0 = none, libDF's lim)."""
    if db >= ATTEN_LIM_MAX_DB:
        return 0.0
    return float(10.0 ** (-max(db, MIN_ATTEN_DB) / 20.0))


class BatchedDeepFilterNet3:
    """DeepFilterNet3 (48 kHz, 10 ms hop, 30 ms delay) on onnxruntime, batched over streams.

    Thread-safe: calls on disjoint sets of states may run on different threads at once (the
    onnxruntime session is shared; each call uses one intra-op thread)."""

    name = "DeepFilterNet3"
    sample_rate = 48_000
    hop_size = 480
    delay_samples = 1440  # same as libDF: STFT overlap plus two hops of lookahead

    def __init__(self, *, archive: Path | None = None, cache_dir: Path | None = None) -> None:
        built = graph.load(archive, cache_dir)
        self.dsp = Dsp.from_config(built.config)
        if (self.dsp.hop_size, int(built.config["sr"])) != (self.hop_size, self.sample_rate):
            raise EngineError(f"unexpected model config {built.config}")
        self.states = built.states
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # parallelism comes from one worker per core
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(built.model, options, providers=["CPUExecutionProvider"])
        except (ort.capi.onnxruntime_pybind11_state.Fail, RuntimeError) as exc:
            raise EngineError(f"onnxruntime cannot load the DeepFilterNet3 graph: {exc}") from exc
        self._outputs = ["lsnr", "m", "coefs", *(f"{s.name}.next" for s in self.states)]

    def open(self, atten_lim_db: float = ATTEN_LIM_MAX_DB) -> BatchedState:
        """A fresh stream state (a few arrays: nothing is compiled or loaded)."""
        return BatchedState(self, validate_atten_lim(atten_lim_db))

    def process(self, states: Sequence[BatchedState], hops: Real) -> tuple[Real, Real]:
        """One hop for each of `states` (distinct, open) as one call: hops (B, 480) ->
        (enhanced hops (B, 480), local SNR in dB (B,)). Output lags input by the delay."""
        hops = np.ascontiguousarray(hops, dtype=np.float32)
        if hops.shape != (len(states), self.hop_size):
            raise ValueError(f"hops must be ({len(states)}, {self.hop_size}), got {hops.shape}")
        for state in states:
            if state.closed:
                raise StreamClosedError("the DeepFilterNet state is closed")
        return self._run(list(states), hops)

    def _run(self, rows: list[BatchedState], hops: Real) -> tuple[Real, Real]:
        dsp = self.dsp
        spec = dsp.analysis(np.stack([r.analysis_mem for r in rows]), hops)
        history = np.concatenate([np.stack([r.history[1:] for r in rows]), spec[:, None]], axis=1)
        feat_erb, mean_norm = dsp.erb_features(spec, np.stack([r.mean_norm for r in rows]))
        feat_cplx, unit_norm = dsp.complex_features(spec, np.stack([r.unit_norm for r in rows]))
        feeds = {
            "feat_erb": feat_erb[:, None, None, :],
            "feat_spec": np.stack([feat_cplx.real, feat_cplx.imag], axis=1)[:, :, None, :].astype(np.float32),
        }
        for spec_ in self.states:
            feeds[spec_.name] = np.concatenate([r.net[spec_.name] for r in rows], axis=spec_.batch_axis)
        lsnr_, mask, coefs, *nexts = self._session.run(self._outputs, feeds)
        lsnr = lsnr_[:, 0, 0]
        noisy = history[:, dsp.df_order - 1 - dsp.lookahead]  # frame t-2
        enhanced = noisy * dsp.band_gains(mask[:, 0, 0, :])
        taps = coefs[:, 0].reshape(len(rows), dsp.nb_df, dsp.df_order, 2)
        enhanced[:, : dsp.nb_df] = dsp.deep_filter(
            history, (taps[..., 0] + 1j * taps[..., 1]).astype(np.complex64)
        )
        lim = np.array([r.mix for r in rows], np.float32)[:, None]
        enhanced = (enhanced * (np.float32(1.0) - lim) + lim * noisy).astype(np.complex64)
        out, synthesis_mem = dsp.synthesis(enhanced, np.stack([r.synthesis_mem for r in rows]))

        for i, row in enumerate(rows):
            row.analysis_mem = hops[i].copy()
            row.synthesis_mem = synthesis_mem[i]
            row.history = history[i]
            row.mean_norm = mean_norm[i]
            row.unit_norm = unit_norm[i]
            for spec_, nxt in zip(self.states, nexts, strict=True):
                row.net[spec_.name] = np.take(nxt, [i], axis=spec_.batch_axis)
        return out, lsnr


class BatchedState:
    """One stream of a BatchedDeepFilterNet3: its DSP memories and network states."""

    def __init__(self, engine: BatchedDeepFilterNet3, atten_lim_db: float) -> None:
        dsp = engine.dsp
        self._engine = engine
        self.analysis_mem = np.zeros(dsp.fft_size - dsp.hop_size, np.float32)
        self.synthesis_mem = np.zeros(dsp.fft_size - dsp.hop_size, np.float32)
        self.history: Cplx = np.zeros((dsp.df_order, dsp.freqs), np.complex64)  # spectra t-4..t
        self.mean_norm = dsp.initial_mean_norm()
        self.unit_norm = dsp.initial_unit_norm()
        self.net = {s.name: np.zeros(s.shape, np.float32) for s in engine.states}
        self.mix = attenuation_mix(atten_lim_db)
        self._closed = False
        self._lock = threading.Lock()  # one call at a time, as with libDF's states

    @property
    def closed(self) -> bool:
        return self._closed

    def process_hop(self, hop: Real) -> tuple[Real, float]:
        hop = np.ascontiguousarray(hop, dtype=np.float32)
        if hop.shape != (self._engine.hop_size,):
            raise ValueError(f"a hop must hold {self._engine.hop_size} mono samples, got shape {hop.shape}")
        with self._lock:
            out, lsnr = self._engine.process([self], hop[None])
        return out[0], float(lsnr[0])

    def set_atten_lim(self, db: float) -> None:
        mix = attenuation_mix(validate_atten_lim(db))
        if self._closed:
            raise StreamClosedError("the DeepFilterNet state is closed")
        self.mix = mix

    def close(self) -> None:
        self._closed = True
        self.net = {}
