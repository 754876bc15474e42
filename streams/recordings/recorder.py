"""Recording a live stream to crash-safe WAVs without stalling the event loop (no Django here).

`Recorder.write()` is called from the event loop with each 20 ms block, as the live path
carries it (mono float32 at 48 kHz); it only hands the block to a writer thread through a
bounded queue, so neither the int16 conversion nor a slow disk ever runs on the loop: when the
queue is full the block is dropped and counted in `dropped`.

At least once per `sync_interval_s` the writer syncs its files (`streams.recordings.wav_file.WavFile`:
data first, then a header that claims only that), so a SIGKILL loses at most about a second;
`repair_wav` fixes the sizes of such a file at the next start. Readers may open a file while it
is being written; they see the audio up to the last sync. Files are mono by default
(`channels=1`; see `to_int16` for how other channel counts are mapped).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

from streams.recordings.wav_file import RecordingStats, Samples, WavFile, to_int16

log = logging.getLogger(__name__)

_STOP = object()


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
        self._audio = WavFile(Path(audio_path), sample_rate, channels)
        try:
            self._raw = WavFile(Path(raw_path), sample_rate, channels) if raw_path else None
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

    def write(self, clean: Samples, raw: Samples | None = None) -> None:
        """Queue one block (mono float32 in [-1, 1] on the live path; any `to_int16` input
        works); never blocks, and converts nothing here: the writer thread does. The blocks
        become the recorder's: the caller must not change them afterwards. Call from one thread
        (the event loop); late writes after close() are ignored. The Recorder's constructor does
        blocking file work: build it off the loop (`open_recorder` runs in a worker thread)."""
        if self._closing:
            return
        try:
            self._queue.put_nowait((clean, None if self._raw is None else raw))
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

    def _write_item(self, clean: Samples, raw: Samples | None) -> None:
        if self.error is not None:  # after a disk error the rest of the stream is discarded
            return
        clean_s = to_int16(clean, self.channels, self.sample_rate)
        try:
            self._audio.append(clean_s)
            if self._raw is not None:
                self._raw.append(clean_s if raw is None else to_int16(raw, self.channels, self.sample_rate))
        except OSError as exc:
            self._fail(exc)
            return
        with self._progress:
            self._frames += clean_s.shape[0]
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
