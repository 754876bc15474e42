"""Waveform peaks of WAV files (recordings/peaks.py): values per slice, short and empty files, the cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from streams.recordings import peaks

RATE = 48000


def write_wav(path: Path, samples: np.ndarray) -> Path:
    sf.write(path, samples.astype(np.int16), RATE, subtype="PCM_16")
    return path


def regions(extremes: list[tuple[int, int]], length: int) -> np.ndarray:
    """Quiet noise in slices of `length` frames, each with its own (min, max) at odd places."""
    rng = np.random.default_rng(7)
    out = rng.integers(-100, 100, size=len(extremes) * length)
    for i, (lo, hi) in enumerate(extremes):
        out[i * length + (i * 7919) % length] = lo
        out[(i + 1) * length - 1 - (i * 104729) % length] = hi
    return out


def test_each_slice_has_its_own_min_and_max(tmp_path: Path) -> None:
    # 50 000-frame slices: several of them straddle the 65 536-frame reads.
    extremes = [(-16384, 8192), (-32768, 32767), (-4096, 24576), (-1000, 1000)]
    wav = write_wav(tmp_path / "a.wav", regions(extremes, 50_000))

    result = peaks.compute_peaks(wav, buckets=4)

    expected = [round(v / 32768, 3) for pair in extremes for v in pair]
    assert result == {"peaks": expected, "buckets": 4, "duration_s": round(200_000 / RATE, 3)}


def test_extremes_either_side_of_a_read_boundary_land_in_their_own_slice(tmp_path: Path) -> None:
    samples = np.zeros(2 * 65_536, np.int16)
    samples[65_535], samples[65_536] = 16384, -16384  # last of the first read, first of the second
    result = peaks.compute_peaks(write_wav(tmp_path / "b.wav", samples), buckets=2)
    assert result["peaks"] == [0.0, 0.5, -0.5, 0.0]


def test_a_long_file_gets_800_slices_of_the_first_channel_only(tmp_path: Path) -> None:
    left = np.zeros(RATE * 10, np.int16)
    left[-1] = -8192
    right = np.full(RATE * 10, 30000, np.int16)  # would show everywhere if it were read
    wav = tmp_path / "stereo.wav"
    sf.write(wav, np.stack([left, right], axis=1), RATE, subtype="PCM_16")

    result = peaks.compute_peaks(wav)

    assert result["buckets"] == peaks.BUCKETS == 800
    assert result["duration_s"] == 10.0
    assert result["peaks"][:-2] == [0.0] * 1598
    assert result["peaks"][-2:] == [-0.25, 0.0]


def test_a_file_shorter_than_the_slices_gives_one_slice_a_frame(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "short.wav", np.array([1000, -2000, 32767]))
    assert peaks.compute_peaks(wav) == {
        "peaks": [0.031, 0.031, -0.061, -0.061, 1.0, 1.0],
        "buckets": 3,
        "duration_s": 0.0,
    }


def test_an_empty_wav_has_no_slices(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "empty.wav", np.zeros(0))
    assert peaks.compute_peaks(wav) == {"peaks": [], "buckets": 0, "duration_s": 0.0}


def test_a_file_being_written_is_read_up_to_what_its_header_claims(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "live.wav", np.full(480, 16384))
    with open(wav, "ab") as fh:  # appended after the last header sync
        fh.write(np.full(480, -16384, np.int16).tobytes())
    assert peaks.compute_peaks(wav, buckets=4) == {"peaks": [0.5] * 8, "buckets": 4, "duration_s": 0.01}


def test_a_file_cut_short_by_a_crash_reads_what_is_there(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "cut.wav", np.full(1000, -16384))
    with open(wav, "r+b") as fh:  # the header still claims 1000 frames
        fh.truncate(44 + 2 * 480)
    assert peaks.compute_peaks(wav, buckets=4) == {"peaks": [-0.5] * 8, "buckets": 4, "duration_s": 0.01}


@pytest.mark.parametrize("content", [b"", b"not a wav file" * 10])
def test_a_file_that_is_not_audio_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(peaks.PeaksError):
        peaks.compute_peaks(path)


def test_a_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        peaks.compute_peaks(tmp_path / "gone.wav")


# ---- cache ----------------------------------------------------------------------------------


def test_cached_peaks_are_computed_once(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "rec.wav", np.full(100, 16384))
    first = peaks.peaks_of(wav, cache=True)
    assert json.loads((tmp_path / "rec.wav.peaks.json").read_text()) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.wav", "rec.wav.peaks.json"]  # no temp left

    write_wav(wav, np.full(100, -16384))  # a finished file never changes; this proves the cache is used
    assert peaks.peaks_of(wav, cache=True) == first


def test_uncached_peaks_follow_the_file_and_write_nothing(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "live.wav", np.full(100, 16384))
    assert peaks.peaks_of(wav, cache=False)["peaks"][:2] == [0.5, 0.5]
    write_wav(wav, np.full(200, -16384))
    assert peaks.peaks_of(wav, cache=False)["peaks"][:2] == [-0.5, -0.5]
    assert not peaks.cache_path(wav).exists()


def test_a_damaged_cache_is_replaced(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "rec.wav", np.full(100, 16384))
    peaks.cache_path(wav).write_text('{"peaks": [0.1')
    result = peaks.peaks_of(wav, cache=True)
    assert result["peaks"][:2] == [0.5, 0.5]
    assert json.loads(peaks.cache_path(wav).read_text()) == result


def test_peaks_are_served_when_the_cache_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wav = write_wav(tmp_path / "rec.wav", np.full(100, 16384))

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(peaks.tempfile, "mkstemp", full_disk)
    assert peaks.peaks_of(wav, cache=True)["buckets"] == 100
    assert [p.name for p in tmp_path.iterdir()] == ["rec.wav"]
