"""Real-time speech denoising with DeepFilterNet3 (no Django imports here).

- `denoise.engine`: the `Engine` interface and the DeepFilterNet3 ctypes binding (libDF).
- `denoise.batched`: `BatchedDeepFilterNet3`, the same model on onnxruntime, many streams a call;
  its graph (`denoise.graph`, built by `denoise.builder` with `denoise.surgery`), DSP
  (`denoise.dsp`) and per-stream state rows (`denoise.bank`).
- `denoise.stream`: `Denoiser`, one stream's frame-in/frame-out denoising with live controls.
- `denoise.batcher`, `denoise.pool`: worker threads and the asyncio pool for live streams.
- `denoise.audio`, `denoise.codec`: frame and file format conversion.
- `denoise.cli`: the offline file command (`python -m denoise`).
"""

from denoise.batched import BatchedDeepFilterNet3
from denoise.engine import DeepFilterNet3, Engine, EngineState
from denoise.exceptions import DenoiseError
from denoise.stream import Denoiser, algorithmic_delay

__all__ = [
    "BatchedDeepFilterNet3",
    "DeepFilterNet3",
    "DenoiseError",
    "Denoiser",
    "Engine",
    "EngineState",
    "algorithmic_delay",
]
