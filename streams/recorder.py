"""Crash-safe WAV recording of a live stream (no Django here: plain file writing).

`Recorder.write()` is called from the event loop with each 20 ms frame; it converts the frame
to int16 (cheap) and hands it to a writer thread through a bounded queue, so a slow disk never
stalls the loop: when the queue is full the frame is dropped and counted in `dropped`.

Files are canonical 44-byte-header PCM WAVs. At least once per `sync_interval_s` the writer
flushes the data to the OS and then rewrites the header with the sizes of what was flushed, so
the header never claims more than the file holds and a SIGKILL loses at most about a second;
`repair_wav` fixes the sizes of such a file at the next start. Readers may open a file while it
is being written; they see the audio up to the last header update.

Channels: files are mono by default. aiortc hands over s16 packed stereo frames whose two
channels carry the same microphone signal, so `channels=1` stores their average (half the
disk, same content); `channels=2` keeps both (mono inputs are duplicated).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import queue
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")  # RIFF, fmt (PCM, 16 bytes) and data chunk headers
_HEADER_SIZE = _HEADER.size  # 44
_MAX_RIFF_SIZE = 0xFFFFFFFF  # 32-bit sizes: about 12 h of 48 kHz mono 16-bit audio
_STOP = object()

Samples = av.AudioFrame | np.ndarray


class WavError(ValueError):
    """The file is not a PCM WAV that `repair_wav` can fix."""


@dataclass(frozen=True)
class RecordingStats:
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


class _WavFile:
    """One WAV being appended to; after opening only the writer thread touches it."""

    def __init__(self, path: Path, sample_rate: int, channels: int) -> None:
        self.path = path
        self.sample_rate = sample_rate
        self.channels = channels
        self.data_bytes = 0
        self._closed = False
        self._fh: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._fh.write(_header(0, sample_rate, channels))
        self._fh.flush()

    def append(self, samples: np.ndarray) -> None:
        data = samples.astype("<i2", copy=False).tobytes()
        if _HEADER_SIZE - 8 + self.data_bytes + len(data) > _MAX_RIFF_SIZE:
            raise OSError(errno.EFBIG, "WAV file reached its 4 GiB size limit", str(self.path))
        self._fh.write(data)
        self.data_bytes += len(data)

    def sync(self) -> None:
        """Data to the OS first, then a header that claims only what is already there."""
        self._fh.flush()
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


class Recorder:
    """Writes 48 kHz 16-bit WAVs off the event loop: a writer thread fed by a bounded queue.

    `raw_path` (optional) gets the unprocessed signal; `write(clean)` without `raw` copies the
    clean samples there, so both files always have the same length. `frames_written` counts
    sample frames (one sample per channel, as in WAV) that reached the file writer.
    `clock`, `sync_interval_s` and `max_queue` exist for tests and tuning.
    """

    def __init__(
        self,
        audio_path: Path,
        raw_path: Path | None,
        *,
        sample_rate: int = 48000,
        channels: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sync_interval_s: float = 1.0,
        max_queue: int = 250,  # 5 s of 20 ms frames
    ) -> None:
        if channels not in (1, 2):
            raise ValueError("channels must be 1 or 2")
        self.sample_rate = sample_rate
        self.channels = channels
        self.dropped = 0
        self.error: OSError | None = None
        self._clock = clock
        self._interval = sync_interval_s
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self._audio = _WavFile(Path(audio_path), sample_rate, channels)
        try:
            self._raw = _WavFile(Path(raw_path), sample_rate, channels) if raw_path else None
        except OSError:
            self._audio.close()
            raise
        self._frames = 0
        self._synced_frames = 0
        self._progress = threading.Condition()  # notified after each write and each sync
        self._last_sync = clock()
        self._close_lock = threading.Lock()
        self._closing = False
        self._stats: RecordingStats | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"recorder-{self._audio.path.name}", daemon=True
        )
        self._thread.start()

    @property
    def frames_written(self) -> int:
        return self._frames

    @property
    def duration_s(self) -> float:
        return self._frames / self.sample_rate

    @property
    def header_frames(self) -> int:
        """Sample frames the audio file's header accounts for (as of the last sync)."""
        return self._synced_frames

    def write(self, clean: Samples, raw: Samples | None = None) -> None:
        """Queue one block; never blocks. Call from one thread (the event loop): the
        int16 conversion runs here, the file write in the writer thread. Late writes after
        close() are ignored. The Recorder's constructor does blocking file work: build it off
        the loop (`open_recorder` runs inside database_sync_to_async)."""
        if self._closing:
            return
        clean_s = to_int16(clean, self.channels, self.sample_rate)
        raw_s = None if raw is None or self._raw is None else to_int16(raw, self.channels, self.sample_rate)
        try:
            self._queue.put_nowait((clean_s, raw_s))
        except queue.Full:
            self.dropped += 1

    def wait_written(self, frames: int, timeout: float) -> bool:
        """Block until the writer has handled at least `frames` sample frames (tests, tools)."""
        with self._progress:
            return self._progress.wait_for(lambda: self._frames >= frames, timeout)

    def wait_synced(self, frames: int, timeout: float) -> bool:
        """Block until the header accounts for at least `frames` sample frames (tests, tools).

        With an injected clock, `wait_written` before moving the clock, or the writer may see
        the new time while earlier frames are still queued and sync fewer frames than expected.
        """
        with self._progress:
            return self._progress.wait_for(lambda: self._synced_frames >= frames, timeout)

    def close(self) -> RecordingStats:
        """Flush, write the final headers and close the files; later calls return the same stats."""
        with self._close_lock:
            if self._stats is not None:
                return self._stats
            self._closing = True
            while self._thread.is_alive():  # the writer drains what is queued before the stop mark
                try:
                    self._queue.put(_STOP, timeout=0.5)
                    break
                except queue.Full:
                    continue
            self._thread.join()
            size = 0
            for wav in (self._audio, self._raw):
                if wav is not None:
                    size += self._close_file(wav)
            self._stats = RecordingStats(duration_s=self.duration_s, size_bytes=size)
            self._publish_sync()
            return self._stats

    async def aclose(self) -> RecordingStats:
        return await asyncio.to_thread(self.close)

    def _close_file(self, wav: _WavFile) -> int:
        try:
            return wav.close()
        except OSError as exc:
            log.error("Could not finish %s: %s", wav.path, exc)
            return 0

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self._interval)
            except queue.Empty:
                item = None
            if item is _STOP:
                return
            if isinstance(item, tuple):
                self._write_item(*item)
            if self._frames != self._synced_frames and self._clock() - self._last_sync >= self._interval:
                self._sync()

    def _write_item(self, clean: np.ndarray, raw: np.ndarray | None) -> None:
        if self.error is not None:  # after a disk error the rest of the stream is discarded
            return
        try:
            self._audio.append(clean)
            if self._raw is not None:
                self._raw.append(clean if raw is None else raw)
        except OSError as exc:
            self._fail(exc)
            return
        with self._progress:
            self._frames += clean.shape[0]
            self._progress.notify_all()

    def _sync(self) -> None:
        try:
            self._audio.sync()
            if self._raw is not None:
                self._raw.sync()
        except OSError as exc:
            self._fail(exc)
            return
        self._last_sync = self._clock()
        self._publish_sync()

    def _publish_sync(self) -> None:
        with self._progress:
            self._synced_frames = self._frames
            self._progress.notify_all()

    def _fail(self, exc: OSError) -> None:
        self.error = exc
        log.error("Recording to %s stopped: %s", self._audio.path, exc)


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
