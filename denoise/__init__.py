"""Real-time speech denoising with DeepFilterNet3 (no Django imports here).

- `denoise.engine`: the `Engine` interface and the DeepFilterNet3 ctypes binding.
- `denoise.stream`: `Denoiser`, one stream's frame-in/frame-out denoising with live controls.
- `denoise.audio`: frame and file format conversion.
- `denoise.cli`: the offline file command (`python -m denoise`).
"""

from denoise.engine import DeepFilterNet3, Engine, EngineState
from denoise.exceptions import DenoiseError
from denoise.stream import Denoiser, algorithmic_delay

__all__ = ["DeepFilterNet3", "DenoiseError", "Denoiser", "Engine", "EngineState", "algorithmic_delay"]
