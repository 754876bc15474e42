"""`BatchedDeepFilterNet3`: DeepFilterNet3 on onnxruntime, one copy of the weights for every
stream, many streams per call.

The streamable graph (denoise.graph) carries each stream's recurrent state explicitly; the DSP
(denoise.dsp) is numpy over the batch. `process()` runs one hop of each of B streams as one
network call; `BatchedState.process_hop()` is the same call with B = 1, so the engine also serves
the plain `Engine` interface. The per-hop logic follows libDF's `DfTract::process` (tract.rs):
gains on frame t-2, the deep filter over t-4..t, and the attenuation limit. libDF's C API sets
the stage thresholds on the local SNR to -15/35/35 dB (capi.rs), the bounds of the network's SNR
output, so both decoders always run: the whole graph runs every hop. For the same reason libDF's
silence skip never fires through the C API (every hop's gains reset its count of quiet hops);
digital silence in still gives silence out.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from denoise import graph
from denoise.bank import Field, Page, Slot, StateBank, row_index
from denoise.dsp import Dsp, Real
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
        self.bank = StateBank(_fields(self.dsp, self.states))

    def open(self, atten_lim_db: float = ATTEN_LIM_MAX_DB) -> BatchedState:
        """A fresh stream state (a row of the state bank: nothing is compiled or loaded)."""
        return BatchedState(self, self.bank.allocate(), validate_atten_lim(atten_lim_db))

    def process(self, states: Sequence[BatchedState], hops: Real) -> tuple[Real, Real]:
        """One hop for each of `states` (distinct, open) as one call: hops (B, 480) ->
        (enhanced hops (B, 480), local SNR in dB (B,)). Output lags input by the delay."""
        hops = np.ascontiguousarray(hops, dtype=np.float32)
        if hops.shape != (len(states), self.hop_size):
            raise ValueError(f"hops must be ({len(states)}, {self.hop_size}), got {hops.shape}")
        pages: dict[int, tuple[Page, list[int], list[int]]] = {}
        for position, state in enumerate(states):
            slot = state.slot
            _, positions, rows = pages.setdefault(id(slot.page), (slot.page, [], []))
            positions.append(position)
            rows.append(slot.row)
        out = np.empty_like(hops)
        lsnr = np.empty(len(states), np.float32)
        # One call per page: a batch spans pages only beyond ROWS_PER_PAGE open streams.
        for page, positions, rows in pages.values():
            order = np.argsort(rows, kind="stable")  # sorted rows are often consecutive: a view
            picked = np.asarray(positions)[order]
            out[picked], lsnr[picked] = self._run(page, row_index([rows[i] for i in order]), hops[picked])
        return out, lsnr

    def _run(self, page: Page, index: slice | np.ndarray, hops: Real) -> tuple[Real, Real]:
        dsp, arrays = self.dsp, page.arrays
        batch = len(hops)
        spec = dsp.analysis(arrays["analysis"][index], hops)
        history = np.concatenate([arrays["history"][index][:, 1:], spec[:, None]], axis=1)
        feat_erb, mean_norm = dsp.erb_features(spec, arrays["mean_norm"][index])
        feat_cplx, unit_norm = dsp.complex_features(spec, arrays["unit_norm"][index])
        feeds = {
            "feat_erb": feat_erb[:, None, None, :],
            "feat_spec": np.stack([feat_cplx.real, feat_cplx.imag], axis=1)[:, :, None, :].astype(np.float32),
        }
        for state in self.states:
            rows = arrays[state.name][index]
            feeds[state.name] = rows[None] if state.batch_axis == 1 else rows
        lsnr, mask, coefs, *nexts = self._session.run(self._outputs, feeds)
        noisy = history[:, dsp.df_order - 1 - dsp.lookahead]  # frame t-2
        enhanced = noisy * dsp.band_gains(mask[:, 0, 0, :])
        taps = coefs[:, 0].reshape(batch, dsp.nb_df, dsp.df_order, 2)
        enhanced[:, : dsp.nb_df] = dsp.deep_filter(
            history, (taps[..., 0] + 1j * taps[..., 1]).astype(np.complex64)
        )
        lim = arrays["mix"][index][:, None]
        enhanced = (enhanced * (np.float32(1.0) - lim) + lim * noisy).astype(np.complex64)
        out, synthesis = dsp.synthesis(enhanced, arrays["synthesis"][index])

        arrays["analysis"][index] = hops
        arrays["synthesis"][index] = synthesis
        arrays["history"][index] = history
        arrays["mean_norm"][index] = mean_norm
        arrays["unit_norm"][index] = unit_norm
        for state, nxt in zip(self.states, nexts, strict=True):
            arrays[state.name][index] = nxt[0] if state.batch_axis == 1 else nxt
        return out, lsnr[:, 0, 0]


def _fields(dsp: Dsp, states: tuple[graph.StateSpec, ...]) -> tuple[Field, ...]:
    half = dsp.fft_size - dsp.hop_size
    own = (
        Field("analysis", (half,), np.float32),
        Field("synthesis", (half,), np.float32),
        Field("history", (dsp.df_order, dsp.freqs), np.complex64),  # spectra t-4..t
        Field("mean_norm", (dsp.nb_erb,), np.float32, dsp.initial_mean_norm()),
        Field("unit_norm", (dsp.nb_df,), np.float32, dsp.initial_unit_norm()),
        Field("mix", (), np.float32),
    )
    # A GRU state is (1, B, hidden): stored as (hidden,) per row, it gathers to a contiguous
    # (B, hidden) that is fed as a view of shape (1, B, hidden).
    net = tuple(Field(s.name, s.shape[2:] if s.batch_axis == 1 else s.shape[1:], np.float32) for s in states)
    return own + net


class BatchedState:
    """One stream of a BatchedDeepFilterNet3: a row of the engine's state bank."""

    def __init__(self, engine: BatchedDeepFilterNet3, slot: Slot, atten_lim_db: float) -> None:
        self._engine = engine
        self._slot: Slot | None = slot
        slot.page.arrays["mix"][slot.row] = attenuation_mix(atten_lim_db)
        self._lock = threading.Lock()  # one call at a time, as with libDF's states

    @property
    def closed(self) -> bool:
        return self._slot is None

    @property
    def slot(self) -> Slot:
        if self._slot is None:
            raise StreamClosedError("the DeepFilterNet state is closed")
        return self._slot

    def process_hop(self, hop: Real) -> tuple[Real, float]:
        hop = np.ascontiguousarray(hop, dtype=np.float32)
        if hop.shape != (self._engine.hop_size,):
            raise ValueError(f"a hop must hold {self._engine.hop_size} mono samples, got shape {hop.shape}")
        with self._lock:
            out, lsnr = self._engine.process([self], hop[None])
        return out[0], float(lsnr[0])

    def set_atten_lim(self, db: float) -> None:
        mix = attenuation_mix(validate_atten_lim(db))
        slot = self.slot
        slot.page.arrays["mix"][slot.row] = mix

    def close(self) -> None:
        with self._lock:
            slot, self._slot = self._slot, None
        if slot is not None:
            self._engine.bank.release(slot)
