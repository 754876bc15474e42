"""Helpers of the end-to-end tests: a Daphne subprocess, Chromium with a fake microphone,
and the audio measurements (envelopes over short windows, noise floors)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from django.conf import settings
from playwright.sync_api import Browser, Playwright

from testing.daphne import DaphneServer, app_env

ROOT = Path(settings.BASE_DIR)
CHROMIUM = "/usr/bin/chromium"
NOISY_WAV = ROOT / "denoise" / "tests" / "data" / "noisy_snr0.wav"
RATE = 48000
WINDOW_S = 0.02  # envelope resolution: the jitter buffer moves audio by more than a sample
SILENT_DB = -70.0  # windows quieter than this are the padding's digital silence
DROPOUT_DB = -150.0  # an all-zero window: nothing arrived (the capture maps 0 to -180 dB)


# The end-to-end tests' server is the one launcher's (testing/daphne.py).
LiveServer = DaphneServer


def live_server(*, database_url: str, media_root: Path, log_path: Path) -> DaphneServer:
    """Daphne on the test database, as `make run` starts it (not started yet)."""
    return DaphneServer(app_env(database_url, media_root), log_path)


def make_microphone_wav(path: Path, pad_s: float = 1.5) -> Path:
    """The noisy test file then silence, as 16-bit PCM (Chromium reads nothing else, silently)."""
    noisy, rate = sf.read(NOISY_WAV, dtype="float32")
    assert rate == RATE
    sf.write(path, np.concatenate([noisy, np.zeros(int(pad_s * RATE), np.float32)]), RATE, subtype="PCM_16")
    return path


def launch_chromium(playwright: Playwright, microphone: Path) -> Browser:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run `make system-deps` (apt-get install chromium)")
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone}",
            "--autoplay-policy=no-user-gesture-required",
            "--disable-background-networking",
        ],
    )


# ----- audio measurements -----


def envelope_db(samples: np.ndarray, rate: int = RATE, window_s: float = WINDOW_S) -> np.ndarray:
    """RMS level in dBFS of consecutive windows."""
    n = int(rate * window_s)
    frames = samples[: len(samples) // n * n].reshape(-1, n).astype(np.float64)
    return 20 * np.log10(np.sqrt((frames**2).mean(axis=1)) + 1e-9)


def noise_floor_db(env: np.ndarray, guard: int = 1) -> float:
    """The level of the quiet moments between words: a low percentile of the sounding windows.

    Windows of digital silence (the padding, or gaps where nothing arrived) do not count, nor
    do the `guard` windows on either side of a gap, which hold part of it.
    """
    gaps = env < DROPOUT_DB
    near_gap = np.convolve(gaps, np.ones(2 * guard + 1), mode="same") > 0
    sounding = env[(env > SILENT_DB) & ~near_gap]
    assert sounding.size > 50, "too little steady sound to measure a noise floor"
    return float(np.percentile(sounding, 10))


def block_shuffled(env: np.ndarray, block: int = 25, seed: int = 0) -> np.ndarray:
    """The same half-seconds in another order: a control the tracking must score clearly lower."""
    blocks = [env[i : i + block] for i in range(0, len(env) - block + 1, block)]
    order = np.random.default_rng(seed).permutation(len(blocks))
    return np.concatenate([blocks[i] for i in order])


def dropout_fraction(env: np.ndarray) -> float:
    """Share of windows that are exact digital silence: gaps the listener path filled with nothing."""
    return float((env < DROPOUT_DB).mean())


def _zscore_rows(rows: np.ndarray) -> np.ndarray:
    """Each row to mean 0, norm 1 (so a dot product is a correlation); flat rows become NaN."""
    rows = rows - rows.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(rows, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 1e-6, rows / norm, np.nan)


def tracked_correlation(heard: np.ndarray, ref: np.ndarray, chunk: int = 25, slack: int = 6) -> float:
    """How well envelope `heard` follows envelope `ref`, half a second (25 windows) at a time.

    The jitter buffer stretches time and the live path may skip or pad, so no single offset
    holds: gaps of digital silence are cut out of `heard`, and its consecutive chunks are placed
    in `ref` along the best path whose every step moves on by `chunk` +- `slack` windows
    (dynamic programming over all offsets). Silent chunks carry no shape and are left out.
    Returns the median correlation of the placed chunks.
    """
    heard = np.maximum(heard[heard > DROPOUT_DB], -60.0)
    ref = np.maximum(ref, -60.0)
    lags = len(ref) - chunk + 1
    windows = _zscore_rows(np.lib.stride_tricks.sliding_window_view(ref, chunk))
    pieces = [heard[i : i + chunk] for i in range(0, len(heard) - chunk + 1, chunk)]
    scores = [np.nan_to_num(windows @ _zscore_rows(p), nan=-1.0) if p.std() >= 3.0 else None for p in pieces]
    total = np.zeros(lags)  # best path sum ending at each offset
    steps: list[np.ndarray] = []  # per placed chunk: correlation at each offset
    back: list[np.ndarray] = []  # per placed chunk: the previous offset on the best path
    reach = 0  # how many chunk lengths since the last placed chunk
    for score in scores:
        reach += 1
        if score is None:
            continue
        if steps:
            shift, width = reach * chunk, reach * slack
            padded = np.concatenate([np.full(shift + width, -np.inf), total, np.full(width, -np.inf)])
            span = np.lib.stride_tricks.sliding_window_view(padded, 2 * width + 1)[:lags]
            back.append(np.argmax(span, axis=1) - width - shift + np.arange(lags))
            total = span.max(axis=1) + score
        else:
            total = score.copy()
        steps.append(score)
        reach = 0
    assert len(steps) >= 4, f"too few sounding half-seconds to compare ({len(steps)})"
    offset = int(np.argmax(total))
    placed = []
    for i in range(len(steps) - 1, -1, -1):
        placed.append(steps[i][offset])
        if i:
            offset = int(back[i - 1][offset])
    return float(np.median(placed))


# Runs in the listener's page: the RMS of every 20 ms of what the <audio> element plays,
# tapped through Web Audio from the same MediaStream (an AudioWorklet sees every sample).
CAPTURE_ENVELOPE_JS = """
async (seconds) => {
  const stream = document.getElementById("live-audio").srcObject;
  if (!stream) throw new Error("no stream on the audio element");
  const ctx = new AudioContext({ sampleRate: 48000 });
  // A ScriptProcessor, not an AudioWorklet: a worklet's module would be a blob: script, which the
  // pages' Content-Security-Policy (default-src 'self') rightly refuses.
  const node = ctx.createScriptProcessor(1024, 1, 1);
  const rms = [];
  let acc = 0;
  let n = 0;
  node.onaudioprocess = (e) => {
    const ch = e.inputBuffer.getChannelData(0);
    for (let i = 0; i < ch.length; i++) {
      acc += ch[i] * ch[i];
      if (++n === 960) { rms.push(Math.sqrt(acc / 960)); acc = 0; n = 0; }
    }
  };
  const mute = ctx.createGain();
  mute.gain.value = 0;
  ctx.createMediaStreamSource(stream).connect(node).connect(mute).connect(ctx.destination);
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  await ctx.close();
  return rms;
}
"""


def rms_to_db(rms: list[float]) -> np.ndarray:
    return 20 * np.log10(np.asarray(rms, dtype=np.float64) + 1e-9)
