"""The live path's audio format and its one Opus encode per frame.

Everything between the pipeline's entry and the encoder is mono float32 at 48 kHz in 20 ms
blocks (`FRAME_SAMPLES`): what the engine consumes, what the recorder stores and what libopus
takes, so no stage converts again.
"""

from __future__ import annotations

import fractions

import av
import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms, what aiortc's Opus decoder yields and browsers send
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
OPUS_BITRATE = 48_000

Mono = npt.NDArray[np.float32]  # shape (samples,), values in [-1, 1]


class Blocks:
    """Re-cuts a stream of mono samples into `FRAME_SAMPLES` blocks (960 in, the same 960 out)."""

    def __init__(self) -> None:
        self._pending = np.zeros(0, np.float32)

    def push(self, samples: Mono) -> list[Mono]:
        if not self._pending.size and samples.shape[0] == FRAME_SAMPLES:
            return [samples]
        if self._pending.size:
            samples = np.concatenate([self._pending, samples])
        whole = samples.shape[0] - samples.shape[0] % FRAME_SAMPLES
        self._pending = samples[whole:].copy()
        return [samples[i : i + FRAME_SAMPLES] for i in range(0, whole, FRAME_SAMPLES)]


class OpusEncoder:
    """One session's Opus encoder: mono float32 blocks in, 20 ms packets out.

    A 960-sample block goes straight to libopus; other sizes are re-cut into 960-sample
    frames first (numpy only, no resampler: the input is already at 48 kHz).
    """

    def __init__(self, bitrate: int = OPUS_BITRATE) -> None:
        codec = av.CodecContext.create("libopus", "w")
        codec.sample_rate = SAMPLE_RATE
        codec.layout = "mono"
        codec.format = "flt"
        codec.bit_rate = bitrate
        codec.time_base = TIME_BASE
        codec.options = {"application": "audio", "frame_duration": "20"}
        self._codec = codec
        self._blocks = Blocks()
        self._pts = 0

    def encode(self, samples: Mono) -> list[bytes]:
        """Encode one block; returns the 20 ms packets it completed (one for 960 samples)."""
        packets: list[bytes] = []
        for block in self._blocks.push(samples):
            packets.extend(self._encode_frame(block))
        return packets

    def _encode_frame(self, samples: Mono) -> list[bytes]:
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1), format="flt", layout="mono"
        )
        frame.sample_rate = SAMPLE_RATE
        frame.time_base = TIME_BASE
        frame.pts = self._pts
        self._pts += FRAME_SAMPLES
        return [bytes(p) for p in self._codec.encode(frame)]


def silence_packet() -> bytes:
    """An Opus packet of 20 ms of silence, sent to listeners while the broadcaster stalls."""
    encoder = OpusEncoder()
    packets: list[bytes] = []
    while not packets:  # libopus may hold the first frame back
        packets = encoder.encode(np.zeros(FRAME_SAMPLES, np.float32))
    return packets[-1]
