"""The WAV recorder: content, header syncing, closing, back-pressure, repair."""

from __future__ import annotations

import errno
import struct
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from streams.recorder import Recorder, RecordingStats, WavError, repair_wav, to_int16

FRAME = 960  # 20 ms at 48 kHz, what aiortc's Opus decoder hands over


def ramp(index: int, n: int = FRAME) -> np.ndarray:
    """Sample values that identify their position, so content checks catch reordering or loss."""
    return (np.arange(index * n, (index + 1) * n) % 30000).astype(np.int16)


def stereo_frame(mono: np.ndarray) -> av.AudioFrame:
    """An aiortc-like frame: s16 packed stereo, both channels carrying the same signal."""
    frame = av.AudioFrame.from_ndarray(np.repeat(mono, 2)[np.newaxis, :], format="s16", layout="stereo")
    frame.sample_rate = 48000
    return frame


def header_sizes(path: Path) -> tuple[int, int]:
    """(RIFF size, data size) as a reader opening the file now would see them."""
    with open(path, "rb") as fh:
        head = fh.read(44)
    return struct.unpack_from("<I", head, 4)[0], struct.unpack_from("<I", head, 40)[0]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_frames_in_valid_wav_out(tmp_path: Path) -> None:
    audio, raw = tmp_path / "a.wav", tmp_path / "a-raw.wav"
    rec = Recorder(audio, raw)
    for i in range(50):
        rec.write(stereo_frame(ramp(i)), stereo_frame(-ramp(i)))
    stats = rec.close()

    expected = np.concatenate([ramp(i) for i in range(50)])
    clean, rate = sf.read(audio, dtype="int16")
    assert rate == 48000
    assert sf.info(audio).channels == 1
    np.testing.assert_array_equal(clean, expected)
    np.testing.assert_array_equal(sf.read(raw, dtype="int16")[0], -expected)
    assert stats == RecordingStats(duration_s=1.0, size_bytes=2 * (44 + 50 * FRAME * 2))
    assert rec.frames_written == 50 * FRAME
    assert rec.dropped == 0


def test_arrays_floats_and_missing_raw(tmp_path: Path) -> None:
    audio, raw = tmp_path / "b.wav", tmp_path / "b-raw.wav"
    rec = Recorder(audio, raw, channels=2)
    rec.write(ramp(0))  # 1-D int16 mono: duplicated to both channels, and copied to raw
    rec.write(np.array([[0.5, -2.0, 1.0]], dtype=np.float32))  # planar float, clipped
    rec.close()

    data, _ = sf.read(audio, dtype="int16")
    assert data.shape == (FRAME + 3, 2)
    np.testing.assert_array_equal(data[:FRAME, 0], ramp(0))
    np.testing.assert_array_equal(data[:FRAME, 1], ramp(0))
    np.testing.assert_array_equal(data[FRAME:, 0], [16384, -32768, 32767])
    np.testing.assert_array_equal(sf.read(raw, dtype="int16")[0], data)


def test_to_int16_refuses_what_it_cannot_map() -> None:
    wrong_rate = stereo_frame(ramp(0))
    wrong_rate.sample_rate = 44100
    with pytest.raises(ValueError, match="44100"):
        to_int16(wrong_rate, 1, 48000)
    with pytest.raises(ValueError, match="int32"):
        to_int16(np.zeros(10, dtype=np.int32), 1, 48000)
    with pytest.raises(ValueError, match="3 channels"):
        to_int16(np.zeros((3, 10), dtype=np.int16), 2, 48000)
    with pytest.raises(TypeError):
        to_int16(np.zeros((1, 2, 3), dtype=np.int16), 1, 48000)


def test_header_follows_the_clock_while_writing(tmp_path: Path) -> None:
    audio = tmp_path / "c.wav"
    clock = FakeClock()
    rec = Recorder(audio, None, clock=clock, sync_interval_s=0.25)
    try:
        for i in range(10):
            rec.write(ramp(i))
        assert rec.wait_written(10 * FRAME, timeout=5)
        # The clock has not moved: nothing is due, the header still says "empty".
        assert header_sizes(audio) == (36, 0)

        clock.now = 0.25
        rec.write(ramp(10))
        assert rec.wait_synced(11 * FRAME, timeout=5)
        # Read from another handle while the recorder still holds the file open.
        assert header_sizes(audio) == (36 + 11 * FRAME * 2, 11 * FRAME * 2)
        partial, _ = sf.read(audio, dtype="int16")
        np.testing.assert_array_equal(partial, np.concatenate([ramp(i) for i in range(11)]))

        clock.now = 0.4  # less than an interval since the last sync: not due yet
        rec.write(ramp(11))
        assert rec.wait_written(12 * FRAME, timeout=5)
        assert header_sizes(audio)[1] == 11 * FRAME * 2

        clock.now = 0.5  # due, and no further frame arrives: the idle writer syncs on its own
        assert rec.wait_synced(12 * FRAME, timeout=5)
        assert header_sizes(audio)[1] == 12 * FRAME * 2
    finally:
        rec.close()


def test_close_is_idempotent_and_later_writes_are_ignored(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "d.wav", None)
    rec.write(ramp(0))
    first = rec.close()
    rec.write(ramp(1))
    assert rec.close() is first
    assert first.duration_s == FRAME / 48000
    assert rec.frames_written == FRAME
    assert sf.info(tmp_path / "d.wav").frames == FRAME


async def test_aclose_from_the_event_loop(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "e.wav", tmp_path / "e-raw.wav")
    rec.write(stereo_frame(ramp(0)))
    stats = await rec.aclose()
    assert stats == rec.close()
    assert stats.size_bytes == 2 * (44 + FRAME * 2)


def test_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "f.wav", None, max_queue=2)
    entered, release = threading.Event(), threading.Event()
    real_write = rec._write_item

    def stalled(clean: np.ndarray, raw: np.ndarray | None) -> None:
        entered.set()
        release.wait(timeout=10)
        real_write(clean, raw)

    rec._write_item = stalled  # type: ignore[method-assign]
    try:
        rec.write(ramp(0))
        assert entered.wait(timeout=5)  # the writer holds frame 0 and is stuck on the "disk"
        began = time.monotonic()
        for i in range(1, 6):
            rec.write(ramp(i))  # two fit in the queue, three are dropped
        assert time.monotonic() - began < 1.0
        assert rec.dropped == 3
    finally:
        release.set()
        stats = rec.close()
    assert stats.duration_s == 3 * FRAME / 48000
    data, _ = sf.read(tmp_path / "f.wav", dtype="int16")
    np.testing.assert_array_equal(data, np.concatenate([ramp(0), ramp(1), ramp(2)]))


def test_disk_error_stops_recording_but_close_still_works(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "h.wav", None)

    def full_disk(samples: np.ndarray) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    rec._audio.append = full_disk  # type: ignore[method-assign]
    rec.write(ramp(0))
    stats = rec.close()
    assert isinstance(rec.error, OSError)
    assert rec.error.errno == errno.ENOSPC
    assert stats.duration_s == 0
    assert sf.info(tmp_path / "h.wav").frames == 0


def _crashed_copy(tmp_path: Path, frames: int, extra: bytes) -> Path:
    """A WAV whose header was never updated (sizes 0) followed by `extra` stray bytes."""
    path = tmp_path / "crashed.wav"
    rec = Recorder(path, None)
    for i in range(frames):
        rec.write(ramp(i))
    rec.close()
    body = bytearray(path.read_bytes())
    body[4:8] = struct.pack("<I", 36)
    body[40:44] = struct.pack("<I", 0)
    path.write_bytes(bytes(body) + extra)
    return path


def test_repair_fixes_sizes_and_cuts_a_partial_sample(tmp_path: Path) -> None:
    path = _crashed_copy(tmp_path, 5, extra=b"\x01")
    assert sf.info(path).frames == 0  # what a player sees before the repair
    stats = repair_wav(path)
    assert stats == RecordingStats(duration_s=5 * FRAME / 48000, size_bytes=44 + 5 * FRAME * 2)
    assert path.stat().st_size == 44 + 5 * FRAME * 2
    np.testing.assert_array_equal(
        sf.read(path, dtype="int16")[0], np.concatenate([ramp(i) for i in range(5)])
    )
    assert repair_wav(path) == stats  # a sound file is left as it is


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a RIFF"),
        (b"RIFF\x00\x00\x00\x00WAVX", "not a RIFF"),
        (b"RIFF\x00\x00\x00\x00WAVEdata\x00\x00\x00\x00", "before a valid fmt"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00", "fmt chunk cut short"),
        (b"RIFF\x00\x00\x00\x00WAVELIST\x04\x00\x00\x00abcd", "no data chunk"),
    ],
)
def test_repair_refuses_files_that_are_not_wavs(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(WavError, match=message):
        repair_wav(path)
    assert path.read_bytes() == content
