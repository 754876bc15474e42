// Waveform pictures of recordings, from the min/max pairs the server computes
// (GET /api/recordings/<id>/peaks/), so no recording is downloaded just for its picture.

import { api } from "./api.js";

/** [min0, max0, min1, max1, ...] of the denoised file's first channel; null when it is empty. */
export async function loadPeaks(url) {
  const { peaks } = await api(url);
  return peaks.length ? peaks : null;
}

export function drawPeaks(canvas, peaks) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
  canvas.width = width;
  canvas.height = height;
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, width, height);
  g.fillStyle = getComputedStyle(canvas).color;
  const mid = height / 2;
  const buckets = peaks.length / 2;
  // Scale the loudest peak to the full height: quiet recordings still show their shape.
  let loudest = 0;
  for (const v of peaks) loudest = Math.max(loudest, Math.abs(v));
  const gain = loudest > 0 ? 0.95 / loudest : 1;
  for (let x = 0; x < width; x++) {
    const from = Math.floor((x / width) * buckets);
    const to = Math.max(from + 1, Math.floor(((x + 1) / width) * buckets));
    let lo = 0;
    let hi = 0;
    for (let b = from; b < to; b++) {
      lo = Math.min(lo, peaks[b * 2]);
      hi = Math.max(hi, peaks[b * 2 + 1]);
    }
    g.fillRect(x, mid - hi * gain * mid, 1, Math.max(1, (hi - lo) * gain * mid));
  }
}
