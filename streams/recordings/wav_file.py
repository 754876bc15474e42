"""Crash-safe PCM WAV files (no Django here): int16 samples, appending, header syncing, repair.

A `WavFile` is a canonical 44-byte-header PCM WAV being appended to. `sync()` flushes the data
to the OS and only then rewrites the header with the sizes of what was flushed, so the header
never claims more than the file holds: readers may open a file while it is being written and
see the audio up to the last sync, and after a crash `repair_wav` fixes the sizes of what is
left. `RecordingStats` are the figures of such files (a repaired one, or a recorder's pair).

Channels: `to_int16` maps a frame onto the file's channel count. aiortc hands over s16 packed
stereo frames whose two channels carry the same microphone signal, so a mono file stores their
average (half the disk, same content); a stereo file keeps both (mono inputs are duplicated).
"""

from __future__ import annotations

import errno
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")  # RIFF, fmt (PCM, 16 bytes) and data chunk headers
_HEADER_SIZE = _HEADER.size  # 44
_MAX_RIFF_SIZE = 0xFFFFFFFF  # 32-bit sizes: about 12 h of 48 kHz mono 16-bit audio

Samples = av.AudioFrame | np.ndarray


class WavError(ValueError):
    """The file is not a PCM WAV that `repair_wav` can fix."""


@dataclass(frozen=True)
class RecordingStats:
    """Figures of a closed recording's files. Defined here, not in recorder.py, because
    `repair_wav` returns them too and recorder.py builds on this module."""

    duration_s: float
    size_bytes: int  # audio file (+ raw file) bytes on disk


def _header(data_bytes: int, sample_rate: int, channels: int) -> bytes:
    block = channels * 2
    return _HEADER.pack(
        b"RIFF", _HEADER_SIZE - 8 + data_bytes, b"WAVE", b"fmt ", 16, 1, channels,
        sample_rate, sample_rate * block, block, 16, b"data", data_bytes,
    )  # fmt: skip


def _as_int16(planar: np.ndarray) -> np.ndarray:
    if planar.dtype == np.int16:
        return planar
    if np.issubdtype(planar.dtype, np.floating):
        return np.clip(np.rint(planar * 32768.0), -32768, 32767).astype(np.int16)
    raise ValueError(f"Unsupported sample type {planar.dtype}; expected int16 or float.")


def to_int16(block: Samples, channels: int, sample_rate: int) -> np.ndarray:
    """(samples, channels) int16 from an av.AudioFrame or an array.

    Arrays are 1-D (mono) or 2-D planar (channels, samples), as PyAV and DeepFilterNet use;
    float samples are in [-1, 1].
    """
    if isinstance(block, av.AudioFrame):
        if block.sample_rate != sample_rate:
            raise ValueError(f"Frame is {block.sample_rate} Hz; this recorder writes {sample_rate} Hz.")
        data = block.to_ndarray()
        planar = data if block.format.is_planar else data.reshape(-1, block.layout.nb_channels).T
    elif isinstance(block, np.ndarray) and block.ndim in (1, 2):
        planar = block[np.newaxis, :] if block.ndim == 1 else block
    else:
        raise TypeError("Expected an av.AudioFrame or a 1-D/2-D numpy array.")
    planar = _as_int16(planar)
    n_in = planar.shape[0]
    if n_in == channels:
        out = planar
    elif channels == 1:
        out = (planar.astype(np.int32).sum(axis=0) // n_in).astype(np.int16)[np.newaxis, :]
    elif n_in == 1:
        out = np.repeat(planar, channels, axis=0)
    else:
        raise ValueError(f"Cannot map {n_in} channels to {channels}.")
    return np.ascontiguousarray(out.T)


class WavFile:
    """One WAV being appended to; after opening only the writer thread touches it.

    Unbuffered: each append is written to the OS at once, so `data_bytes` is always what the
    file holds. An append the disk refuses part-way (full) is cut back to where it began, so
    the file never ends in half a block and its header can always be made true by `sync()`,
    which overwrites bytes already there and needs no new space.
    """

    def __init__(self, path: Path, sample_rate: int, channels: int) -> None:
        self.path = path
        self.sample_rate = sample_rate
        self.channels = channels
        self.data_bytes = 0
        self._closed = False
        self._fh: BinaryIO = open(path, "wb", buffering=0)  # noqa: SIM115 - closed in close()
        try:
            self._write_all(_header(0, sample_rate, channels))
        except OSError:
            self._fh.close()
            raise

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = self._fh.write(view)
            view = view[written or 0 :]

    def append(self, samples: np.ndarray) -> None:
        data = samples.astype("<i2", copy=False).tobytes()
        if _HEADER_SIZE - 8 + self.data_bytes + len(data) > _MAX_RIFF_SIZE:
            raise OSError(errno.EFBIG, "WAV file reached its 4 GiB size limit", str(self.path))
        try:
            self._write_all(data)
        except OSError:
            self.truncate(self.data_bytes)
            raise
        self.data_bytes += len(data)

    def truncate(self, data_bytes: int) -> None:
        """Cut the data back to `data_bytes` (frees space; never raises for a full disk)."""
        os.ftruncate(self._fh.fileno(), _HEADER_SIZE + data_bytes)
        os.lseek(self._fh.fileno(), 0, os.SEEK_END)
        self.data_bytes = data_bytes

    def sync(self) -> None:
        """A header that claims exactly the data written (already with the OS)."""
        os.pwrite(self._fh.fileno(), _header(self.data_bytes, self.sample_rate, self.channels), 0)

    def close(self) -> int:
        if not self._closed:
            self._closed = True
            try:
                self.sync()
            finally:
                self._fh.close()
        try:
            return self.path.stat().st_size
        except FileNotFoundError:  # deleted while open
            return 0


def _find_data(fh: BinaryIO, size: int) -> tuple[int, int, int]:
    """(block_align, sample_rate, data offset) of a RIFF/WAVE file whose last chunk is `data`."""
    head = fh.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
        raise WavError("not a RIFF/WAVE file")
    block = rate = 0
    pos = 12
    while pos + 8 <= size:
        fh.seek(pos)
        chunk_id, chunk_size = struct.unpack("<4sI", fh.read(8))
        if chunk_id == b"data":
            if not block or not rate:
                raise WavError("data chunk before a valid fmt chunk")
            return block, rate, pos + 8
        if chunk_id == b"fmt ":
            fmt = fh.read(16)
            if len(fmt) < 16:
                raise WavError("fmt chunk cut short")
            _, _, rate, _, block, _ = struct.unpack("<HHIIHH", fmt)
        pos += 8 + chunk_size + (chunk_size & 1)
    raise WavError("no data chunk")


def repair_wav(path: Path) -> RecordingStats:
    """Fix the RIFF and data sizes of a WAV cut short by a crash (the data chunk must be last).

    A partial trailing sample frame is truncated. Raises WavError for files that are not WAVs
    and OSError for files that cannot be opened.
    """
    with open(path, "r+b") as fh:
        size = os.fstat(fh.fileno()).st_size
        block, rate, data_offset = _find_data(fh, size)
        data_bytes = min(size - data_offset, _MAX_RIFF_SIZE - (data_offset - 8))
        data_bytes -= data_bytes % block
        end = data_offset + data_bytes
        if end < size:
            fh.truncate(end)
        fh.seek(4)
        fh.write(struct.pack("<I", end - 8))
        fh.seek(data_offset - 4)
        fh.write(struct.pack("<I", data_bytes))
    return RecordingStats(duration_s=data_bytes / block / rate, size_bytes=end)
