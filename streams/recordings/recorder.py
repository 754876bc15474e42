"""Recording a live stream to crash-safe WAVs without stalling the event loop (no Django here).

`Recorder.write()` is called from the event loop with each 20 ms block, as the live path
carries it; it only hands the block to a writer thread through a bounded queue, so neither the
int16 conversion nor a slow disk ever runs on the loop: when the queue is full the block is
dropped and counted in `dropped`.

The timeline follows the wall clock: when blocks stop coming (a frozen broadcaster, a network
stall, dropped blocks) for more than `gap_s`, the gap is recorded as silence, so a minute of
stream is a minute of recording (counted in `padded_frames`).

At least once per `sync_interval_s` the writer syncs its files (`streams.recordings.wav_file.WavFile`:
a header that claims only the data already written), so a SIGKILL loses at most about a
second; `repair_wav` fixes the sizes of such a file at the next start. Readers may open a file
while it is being written; they see the audio up to the last sync. Files are mono by default
(`channels=1`; see `to_int16` for how other channel counts are mapped).

A disk error (full, quota, the 4 GiB WAV limit) stops the recording once: the files are cut to
the last whole block both hold, their headers made true, one log line written, and
`on_stopped(reason)` called (from the writer thread); the stream itself goes on.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from streams.recordings.wav_file import RecordingStats, Samples, WavFile, to_int16

log = logging.getLogger(__name__)

_STOP = object()
GAP_S = 0.5  # input missing for longer than this is recorded as silence
_SILENCE_CHUNK = 48_000  # sample frames of silence written at a time
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class _Gap:
    def __init__(self, frames: int) -> None:
        self.frames = frames


def _frames_in(block: Samples) -> int:
    if isinstance(block, av.AudioFrame):
        return block.samples
    return int(block.shape[-1])


class Recorder:
    """Writes 48 kHz 16-bit WAVs off the event loop: a writer thread fed by a bounded queue.

    `raw_path` (optional) gets the unprocessed signal; `write(clean)` without `raw` copies the
    clean samples there, so both files always have the same length. `frames_written` counts
    sample frames (one sample per channel, as in WAV) in the files, silence for gaps included.
    `clock` times the header syncs, `wall_clock` the timeline (gaps); they, `sync_interval_s`,
    `max_queue` and `gap_s` exist for tests and tuning.
    """

    def __init__(
        self,
        audio_path: Path,
        raw_path: Path | None,
        *,
        sample_rate: int = 48000,
        channels: int = 1,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.monotonic,
        sync_interval_s: float = 1.0,
        max_queue: int = 250,  # 5 s of 20 ms frames
        gap_s: float = GAP_S,
        on_stopped: Callable[[str], None] | None = None,
    ) -> None:
        if channels not in (1, 2):
            raise ValueError("channels must be 1 or 2")
        self.sample_rate = sample_rate
        self.channels = channels
        self.dropped = 0
        self.padded_frames = 0
        self.error: OSError | None = None
        self.stopped_reason: str | None = None  # "storage_full" or "failed" once a disk error stopped it
        self._clock = clock
        self._wall_clock = wall_clock
        self._interval = sync_interval_s
        self._gap_frames = int(gap_s * sample_rate)
        self._on_stopped = on_stopped
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self._audio = WavFile(Path(audio_path), sample_rate, channels)
        try:
            self._raw = WavFile(Path(raw_path), sample_rate, channels) if raw_path else None
        except OSError:
            self._audio.close()
            raise
        self._started: float | None = None  # clock time of the first block
        self._queued = 0  # sample frames queued so far (blocks and gaps): the timeline's end
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

    def write(self, clean: Samples, raw: Samples | None = None, *, at: float | None = None) -> None:
        """Queue one block (an av.AudioFrame or an array `to_int16` takes); never blocks, and
        converts nothing here: the writer thread does. The blocks become the recorder's: the
        caller must not change them afterwards. `at` is when the block's audio came in, on the
        `wall_clock` (default: now); a caller that writes after a variable delay (the engine's)
        passes it, so a late burst is not taken for a gap. Call from one thread (the event loop);
        late writes after close() are ignored. The Recorder's constructor does blocking file
        work: build it off the loop."""
        if self._closing:
            return
        now = self._wall_clock() if at is None else at
        if self._started is None:
            self._started = now
        missing = round((now - self._started) * self.sample_rate) - self._queued
        try:
            if missing > self._gap_frames:
                self._queue.put_nowait(_Gap(missing))
                self._queued += missing
            self._queue.put_nowait((clean, None if self._raw is None else raw))
            self._queued += _frames_in(clean)
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

    def _close_file(self, wav: WavFile) -> int:
        try:
            return wav.close()
        except OSError as exc:
            log.error("Could not finish %s: %s", wav.path, exc)
            return 0

    def _files(self) -> list[WavFile]:
        return [wav for wav in (self._audio, self._raw) if wav is not None]

    # -- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self._interval)
            except queue.Empty:
                item = None
            if item is _STOP:
                return
            if self.error is not None:  # after a disk error the rest of the stream is discarded
                continue
            if isinstance(item, _Gap):
                self._write_silence(item.frames)
            elif isinstance(item, tuple):
                self._write_item(*item)
            due = self._clock() - self._last_sync >= self._interval
            if self.error is None and self._frames != self._synced_frames and due:
                self._sync()

    def _write_item(self, clean: Samples, raw: Samples | None) -> None:
        clean_s = to_int16(clean, self.channels, self.sample_rate)
        raw_s = clean_s if raw is None else to_int16(raw, self.channels, self.sample_rate)
        self._append(clean_s, raw_s)

    def _write_silence(self, frames: int) -> None:
        self.padded_frames += frames
        while frames > 0 and self.error is None:
            chunk = np.zeros((min(frames, _SILENCE_CHUNK), self.channels), dtype=np.int16)
            self._append(chunk, chunk)
            frames -= chunk.shape[0]

    def _append(self, clean: np.ndarray, raw: np.ndarray) -> None:
        try:
            self._audio.append(clean)
            if self._raw is not None:
                self._raw.append(raw)
        except OSError as exc:
            self._fail(exc)
            return
        with self._progress:
            self._frames += clean.shape[0]
            self._progress.notify_all()

    def _sync(self) -> None:
        try:
            for wav in self._files():
                wav.sync()
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
        """Stop recording once: both files cut to the blocks they both hold, headers made true."""
        self.error = exc
        self.stopped_reason = "storage_full" if exc.errno in _FULL else "failed"
        log.error(
            "Recording to %s stopped after %.1f s (%s): %s; the stream goes on without it.",
            self._audio.path,
            self.duration_s,
            self.stopped_reason,
            exc,
        )
        block = self.channels * 2
        try:
            for wav in self._files():
                wav.truncate(self._frames * block)
                wav.sync()
        except OSError as second:
            log.error("Recording to %s: could not make the file's header true: %s", self._audio.path, second)
        else:
            self._publish_sync()
        if self._on_stopped is not None:
            self._on_stopped(self.stopped_reason)
