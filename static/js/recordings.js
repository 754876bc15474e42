// The friend page's recordings: list, player (play/pause, seek, raw switch), download, waveform.

import { api } from "./api.js";
import { el, formatBytes, formatDate, formatDuration } from "./format.js";
import { drawPeaks, loadPeaks } from "./waveform.js";

const REFRESH_MS = 2000;
const REFRESH_TRIES = 30;

class RecordingItem {
  constructor(rec, onPlay) {
    this.rec = rec;
    this.onPlay = onPlay;
    this.peaks = null;
    this.when = formatDate(rec.started_at);
    this.audio = el("audio", { preload: "metadata", src: rec.audio_url });
    this.node = this.build();
    this.wire();
  }

  duration() {
    const d = this.audio.duration;
    return Number.isFinite(d) && d > 0 ? d : this.rec.duration_s;
  }

  build() {
    const r = this.rec;
    const label = `recording from ${this.when}`;
    this.play = el("button", { type: "button", class: "small-button primary play", "aria-label": `Play ${label}`, text: "Play" });
    this.seek = el("input", { type: "range", class: "seek", min: "0", max: String(r.duration_s || 0), step: "0.1",
      value: "0", "aria-label": `Position in ${label}` });
    this.time = el("span", { class: "time small", text: `00:00 / ${formatDuration(r.duration_s)}` });
    this.canvas = el("canvas", { class: "wave", "aria-hidden": "true" });
    this.progress = el("div", { class: "wave-progress", "aria-hidden": "true" });
    this.raw = r.raw_url
      ? el("input", { type: "checkbox", role: "switch", class: "raw", id: `raw-${r.id}` })
      : null;
    const head = el("div", { class: "rec-head" },
      el("strong", { text: this.when }),
      el("span", { class: "muted", text: formatDuration(r.duration_s) }),
      el("span", { class: "muted small", text: r.denoise ? "began with noise removal" : "began without noise removal" }),
      el("span", { class: "muted small", text: formatBytes(r.size_bytes) }));
    const controls = el("div", { class: "player" }, this.play, this.seek, this.time,
      this.raw && el("span", { class: "switch-row small" }, this.raw,
        el("label", { for: `raw-${r.id}`, text: "Original (before noise removal)" })),
      el("a", { href: r.audio_url, download: "", class: "small-button", text: "Download",
        "aria-label": `Download ${label}` }),
      r.raw_url && el("a", { href: r.raw_url, download: "", class: "small-button", text: "Download original",
        "aria-label": `Download the original of ${label}` }));
    return el("li", { class: "recording", "data-id": String(r.id) }, head,
      el("div", { class: "wave-wrap" }, this.canvas, this.progress), controls, this.audio);
  }

  wire() {
    const { audio } = this;
    this.play.addEventListener("click", () => (audio.paused ? this.start() : audio.pause()));
    audio.addEventListener("play", () => this.setPlaying(true));
    audio.addEventListener("pause", () => this.setPlaying(false));
    audio.addEventListener("ended", () => this.setPlaying(false));
    audio.addEventListener("timeupdate", () => this.showTime());
    audio.addEventListener("loadedmetadata", () => {
      this.seek.max = String(this.duration());
      this.showTime();
    });
    this.seek.addEventListener("input", () => {
      audio.currentTime = Number(this.seek.value);
      this.showTime();
    });
    this.canvas.addEventListener("click", (event) => {
      const box = this.canvas.getBoundingClientRect();
      audio.currentTime = ((event.clientX - box.left) / box.width) * this.duration();
    });
    if (this.raw) this.raw.addEventListener("change", () => this.switchVersion());
  }

  async start() {
    this.onPlay(this);
    try {
      await this.audio.play();
    } catch (err) {
      if (err.name !== "AbortError") this.time.textContent = "This recording could not be played.";
    }
  }

  setPlaying(playing) {
    this.play.textContent = playing ? "Pause" : "Play";
    this.play.setAttribute("aria-label", `${playing ? "Pause" : "Play"} recording from ${this.when}`);
    this.node.classList.toggle("playing", playing);
  }

  showTime() {
    const t = this.audio.currentTime;
    const total = this.duration();
    this.seek.value = String(t);
    this.seek.setAttribute("aria-valuetext", `${formatDuration(t)} of ${formatDuration(total)}`);
    this.time.textContent = `${formatDuration(t)} / ${formatDuration(total)}`;
    this.progress.style.width = `${total ? Math.min(100, (t / total) * 100) : 0}%`;
  }

  /** Swap between the denoised and the original file at the same position. */
  switchVersion() {
    const { audio } = this;
    const at = audio.currentTime;
    const wasPlaying = !audio.paused;
    audio.src = this.raw.checked ? this.rec.raw_url : this.rec.audio_url;
    audio.addEventListener("loadedmetadata", () => {
      audio.currentTime = at;
      if (wasPlaying) this.start();
    }, { once: true });
    audio.load();
  }

  async drawWaveform() {
    try {
      this.peaks = await loadPeaks(this.rec.peaks_url);
    } catch {
      this.peaks = null; // a missing picture is not worth an error message
    }
    this.node.classList.toggle("no-wave", !this.peaks);
    this.redraw();
  }

  redraw() {
    if (this.peaks) drawPeaks(this.canvas, this.peaks);
  }
}

export class RecordingList {
  constructor(username) {
    this.username = username;
    this.list = document.getElementById("recordings");
    this.empty = document.getElementById("recordings-empty");
    this.status = document.getElementById("recordings-status");
    this.items = new Map();
    this.refreshTimer = 0;
    this.drawQueue = Promise.resolve();
    // Each waveform costs the server a read of a whole file: one at a time, only those on screen.
    this.observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        this.observer.unobserve(entry.target);
        const item = [...this.items.values()].find((candidate) => candidate.canvas === entry.target);
        if (item) this.drawQueue = this.drawQueue.then(() => item.drawWaveform());
      }
    });
    window.addEventListener("resize", () => this.items.forEach((item) => item.redraw()));
  }

  pauseOthers(current) {
    this.items.forEach((item) => item !== current && item.audio.pause());
  }

  async load() {
    let recordings;
    try {
      recordings = await api(`/api/recordings/${encodeURIComponent(this.username)}/`);
    } catch (err) {
      this.status.textContent = err.message;
      return [];
    }
    this.status.textContent = "";
    this.render(recordings);
    return recordings;
  }

  render(recordings) {
    const finished = recordings.filter((r) => r.finished);
    const live = recordings.filter((r) => !r.finished);
    const keep = new Map();
    for (const rec of finished) {
      const existing = this.items.get(rec.id);
      keep.set(rec.id, existing || new RecordingItem(rec, (item) => this.pauseOthers(item)));
    }
    for (const [id, item] of this.items) if (!keep.has(id)) item.audio.pause();
    const fresh = [...keep.values()].filter((item) => !this.items.has(item.rec.id));
    this.items = keep;
    const inProgress = live.map((r) => el("li", { class: "recording in-progress" },
      el("strong", { text: formatDate(r.started_at) }), el("span", { class: "muted", text: " — recording now…" })));
    this.list.replaceChildren(...inProgress, ...[...keep.values()].map((item) => item.node));
    this.empty.hidden = recordings.length > 0;
    fresh.forEach((item) => this.observer.observe(item.canvas));
  }

  /** After a stream ends its file is finished shortly after; look again until it is. */
  refreshUntilFinished() {
    clearTimeout(this.refreshTimer);
    let tries = 0;
    const again = async () => {
      const recordings = await this.load();
      if (recordings.some((r) => !r.finished) && ++tries < REFRESH_TRIES) {
        this.refreshTimer = setTimeout(again, REFRESH_MS);
      }
    };
    again();
  }
}
