// Waveform pictures of recordings, decoded in the browser from the audio file itself.

const BUCKETS = 800;
const MAX_BYTES = 40 * 1024 * 1024; // larger files are not fetched just for a picture

/** Min/max pairs of `BUCKETS` slices of the first channel. */
function peaksOf(buffer) {
  const data = buffer.getChannelData(0);
  const step = Math.max(1, Math.floor(data.length / BUCKETS));
  const peaks = new Float32Array(BUCKETS * 2);
  for (let b = 0; b < BUCKETS; b++) {
    let lo = 0;
    let hi = 0;
    const end = Math.min(data.length, (b + 1) * step);
    for (let i = b * step; i < end; i++) {
      const v = data[i];
      if (v < lo) lo = v;
      else if (v > hi) hi = v;
    }
    peaks[b * 2] = lo;
    peaks[b * 2 + 1] = hi;
  }
  return peaks;
}

export async function loadPeaks(url, sizeBytes) {
  if (sizeBytes > MAX_BYTES) return null;
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`could not fetch the recording (${response.status})`);
  // A tiny OfflineAudioContext decodes without needing a user gesture or speakers.
  const ctx = new OfflineAudioContext(1, 1, 48000);
  return peaksOf(await ctx.decodeAudioData(await response.arrayBuffer()));
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
