"""The offline command, `python -m denoise IN OUT` (and denoise.cli.main, which it runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from denoise.cli import main
from testing.frames import RATE, Int16

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def short_wav(tmp_path_factory: pytest.TempPathFactory, noisy: Int16) -> Path:
    """Two and a bit seconds of the noisy speech, in stereo, as a WAV file."""
    path = tmp_path_factory.mktemp("in") / "short.wav"
    excerpt = noisy[RATE : 3 * RATE + 123]
    sf.write(path, np.stack([excerpt, excerpt // 2], axis=1), RATE, subtype="PCM_16")
    return path


def test_output_is_aligned_and_as_long_as_the_input(short_wav: Path, tmp_path: Path):
    source, _ = sf.read(short_wav, dtype="int16")
    assert main([str(short_wav), str(tmp_path / "off.wav"), "--no-denoise"]) == 0
    passed, rate = sf.read(tmp_path / "off.wav", dtype="int16")
    assert rate == RATE
    assert np.array_equal(passed, source)  # delay removed exactly, nothing lost at either end
    assert main([str(short_wav), str(tmp_path / "on.wav"), "--atten-lim", "20"]) == 0
    denoised, _ = sf.read(tmp_path / "on.wav", dtype="float64")
    assert denoised.shape == source.shape
    mid = slice(RATE // 2, 3 * RATE // 2)
    scores = {
        lag: float(np.dot(source[mid, 0], denoised[mid.start + lag : mid.stop + lag, 0]))
        for lag in range(-40, 41)
    }
    assert max(scores, key=scores.__getitem__) == 0


def test_module_entry_point_runs(short_wav: Path, tmp_path: Path):
    out = tmp_path / "out.wav"
    done = subprocess.run(
        [sys.executable, "-m", "denoise", str(short_wav), str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")  # no progress bar off a terminal
    assert sf.info(out).frames == sf.info(short_wav).frames
    bad = subprocess.run(
        [sys.executable, "-m", "denoise", str(tmp_path / "nope.wav"), str(tmp_path / "x.wav")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: ")
    assert bad.stderr.count("\n") == 1
    assert not (tmp_path / "x.wav").exists()


def _bad_cases(base: Path, good: Path) -> dict[str, tuple[list[str], Path]]:
    text = base / "notes.wav"
    text.write_text("not audio at all\n")
    empty = base / "empty.wav"
    empty.write_bytes(b"")
    header_only = base / "header_only.wav"
    sf.write(header_only, np.zeros((0, 1), np.int16), RATE)
    (base / "outdir").mkdir()
    return {
        "missing input": ([str(base / "missing.wav"), str(base / "o1.wav")], base / "o1.wav"),
        "not audio": ([str(text), str(base / "o2.wav")], base / "o2.wav"),
        "empty file": ([str(empty), str(base / "o3.wav")], base / "o3.wav"),
        "zero samples": ([str(header_only), str(base / "o4.wav")], base / "o4.wav"),
        "missing out dir": ([str(good), str(base / "nodir" / "o5.wav")], base / "nodir" / "o5.wav"),
        "out is a dir": ([str(good), str(base / "outdir")], base / "outdir" / good.name),
        "out is in": ([str(good), str(good.parent / "." / good.name)], base / "never-made.wav"),
        "bad limit": ([str(good), str(base / "o6.wav"), "--atten-lim", "150"], base / "o6.wav"),
    }


CASES = [
    "missing input",
    "not audio",
    "empty file",
    "zero samples",
    "missing out dir",
    "out is a dir",
    "out is in",
    "bad limit",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_exits_2_and_writes_nothing(
    case: str, short_wav: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    good = tmp_path / "good.wav"
    good.write_bytes(short_wav.read_bytes())
    argv, out = _bad_cases(tmp_path, good)[case]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert err.count("\n") == 1
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no temporary file left either
    assert good.read_bytes() == short_wav.read_bytes()
