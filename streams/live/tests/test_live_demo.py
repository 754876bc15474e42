"""scripts/live_demo.py (`make demo`): two aiortc clients in their own process, a real daphne."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.webrtc
def test_the_demo_goes_live_listens_and_records_clean_speech(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "scripts/live_demo.py", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    scores = json.loads((tmp_path / "scores.json").read_text())
    pesq = scores["pesq_wb"]
    # What bob heard live and what was recorded are both far cleaner than the input (1.3).
    assert pesq["noisy"] < 1.6
    assert pesq["heard"] > 2.2
    assert pesq["recording"] > 2.4
    assert scores["recording"]["finished"] is True
    assert sf.info(tmp_path / "heard.wav").duration > 10.5  # the whole 10.6 s file arrived
    assert "bob is listening" in done.stdout
