"""The recorder: content, header syncing, closing, back-pressure, disk errors, a full disk, the
wall-clock timeline."""

from __future__ import annotations

import errno
import logging
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from streams.recordings import recorder as recorder_module
from streams.recordings.recorder import Recorder
from streams.recordings.wav_file import RecordingStats
from testing.disk import fill, small_disk
from testing.samples import FRAME, FakeClock, ramp, stereo_frame


def header_sizes(path: Path) -> tuple[int, int]:
    """(RIFF size, data size) as a reader opening the file now would see them."""
    with open(path, "rb") as fh:
        head = fh.read(44)
    return struct.unpack_from("<I", head, 4)[0], struct.unpack_from("<I", head, 40)[0]


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


def test_mono_float_blocks_are_converted_in_the_writer_thread_not_the_callers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    converted_in: list[str] = []
    real = recorder_module.to_int16

    def spy(block: np.ndarray, channels: int, sample_rate: int) -> np.ndarray:
        converted_in.append(threading.current_thread().name)
        return real(block, channels, sample_rate)

    monkeypatch.setattr(recorder_module, "to_int16", spy)
    rec = Recorder(tmp_path / "m.wav", tmp_path / "m-raw.wav")
    clean = np.array([0.5, -0.25, 1.0], np.float32)  # the live path's blocks: mono float32
    rec.write(clean, -clean)
    assert converted_in == []  # write() only queued the block
    rec.close()
    assert converted_in == ["recorder-m.wav"] * 2  # clean and raw, in the writer thread
    np.testing.assert_array_equal(sf.read(tmp_path / "m.wav", dtype="int16")[0], [16384, -8192, 32767])
    np.testing.assert_array_equal(sf.read(tmp_path / "m-raw.wav", dtype="int16")[0], [-16384, 8192, -32768])


# -- a full disk (a small tmpfs in the test namespace) --------------------------------------------


def test_a_full_disk_stops_the_recording_once_and_leaves_true_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stopped: list[str] = []
    with small_disk(tmp_path / "disk", 256 * 1024) as disk:
        rec = Recorder(disk / "a.wav", disk / "a-raw.wav", on_stopped=stopped.append, sync_interval_s=0.05)
        fill(disk, leave_bytes=40 * FRAME * 2 * 2)  # room for about 40 frames in each file
        with caplog.at_level(logging.ERROR, logger="streams.recordings.recorder"):
            for i in range(200):  # 4 s: the disk fills after about 0.8 s
                rec.write(ramp(i))
            stats = rec.close()
        assert stopped == ["storage_full"]
        assert rec.stopped_reason == "storage_full"
        assert len(caplog.records) == 1  # one line for the change, not one per frame
        # What the row gets is what the files hold, and their headers say so.
        for path in (disk / "a.wav", disk / "a-raw.wav"):
            assert sf.info(path).frames == rec.frames_written
            assert header_sizes(path)[1] == rec.frames_written * 2
        assert 0 < rec.frames_written < 200 * FRAME
        assert stats.duration_s == rec.frames_written / 48000
        assert stats.size_bytes == (disk / "a.wav").stat().st_size + (disk / "a-raw.wav").stat().st_size
        data, _ = sf.read(disk / "a.wav", dtype="int16")
        frames = rec.frames_written // FRAME
        np.testing.assert_array_equal(
            data[: frames * FRAME], np.concatenate([ramp(i) for i in range(frames)])
        )


def test_a_recorder_cannot_start_on_a_full_disk(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", 64 * 1024) as disk:
        fill(disk)
        with pytest.raises(OSError, match="No space left") as raised:
            Recorder(disk / "b.wav", None)
        assert raised.value.errno == errno.ENOSPC


# -- the timeline follows the wall clock ----------------------------------------------------------


def test_a_gap_in_the_input_is_recorded_as_silence(tmp_path: Path) -> None:
    wall = FakeClock()
    rec = Recorder(tmp_path / "g.wav", None, wall_clock=wall)
    for i in range(10):  # 0.2 s, in real time
        wall.now = i * 0.02
        rec.write(ramp(i))
    wall.now = 3.2  # the broadcaster froze for 3 s
    for i in range(10, 20):
        rec.write(ramp(i))
        wall.now += 0.02
    wall.now = 3.25  # jitter below the gap threshold: nothing added
    rec.write(ramp(20))
    rec.close()

    data, _ = sf.read(tmp_path / "g.wav", dtype="int16")
    assert len(data) == round(3.2 * 48000) + 11 * FRAME  # the timeline is wall time
    assert rec.padded_frames == round(3.2 * 48000) - 10 * FRAME
    np.testing.assert_array_equal(data[: 10 * FRAME], np.concatenate([ramp(i) for i in range(10)]))
    assert not data[10 * FRAME : round(3.2 * 48000)].any()
    np.testing.assert_array_equal(
        data[round(3.2 * 48000) :], np.concatenate([ramp(i) for i in range(10, 21)])
    )
