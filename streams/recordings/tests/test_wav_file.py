"""WAV files: sample conversion, and the repair of files a crash left with stale header sizes."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from streams.recordings.wav_file import RecordingStats, WavError, WavFile, repair_wav, to_int16
from testing.samples import FRAME, ramp, stereo_frame


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


def _crashed_copy(tmp_path: Path, frames: int, extra: bytes) -> Path:
    """A WAV whose header was never updated (sizes 0) followed by `extra` stray bytes."""
    path = tmp_path / "crashed.wav"
    wav = WavFile(path, 48000, 1)
    for i in range(frames):
        wav.append(to_int16(ramp(i), 1, 48000))
    wav.close()
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
