// One recording in the list: player (play/pause, seek, original switch), waveform of the version
// being played, downloads with their own sizes, and for the owner rename and delete.

import { formatBytes, formatDate, formatDuration } from "./format.js";
import { el } from "./ui.js";
import { drawPeaks, loadPeaks } from "./waveform.js";

export const TITLE_MAX = 100;

export class RecordingItem {
  /** @param {object} rec  one entry of GET /api/recordings/<username>/
   *  @param {{onPlay: (item: RecordingItem) => void, owner: boolean,
   *   rename: (item: RecordingItem, title: string) => Promise<void>,
   *   remove: (item: RecordingItem) => Promise<void>}} hooks */
  constructor(rec, hooks) {
    this.rec = rec;
    this.hooks = hooks;
    this.peaks = { audio: null, raw: null };
    this.audio = el("audio", { preload: "metadata", src: rec.audio_url });
    this.node = this.build();
    this.wire();
  }

  get title() {
    return this.rec.title || formatDate(this.rec.started_at);
  }

  get label() {
    return `recording “${this.title}”`;
  }

  get version() {
    return this.raw && this.raw.checked ? "raw" : "audio";
  }

  duration() {
    const d = this.audio.duration;
    return Number.isFinite(d) && d > 0 ? d : this.rec.duration_s;
  }

  build() {
    const r = this.rec;
    this.play = el("button", { type: "button", class: "small-button primary play", text: "Play" });
    this.seek = el("input", { type: "range", class: "seek", min: "0", max: String(r.duration_s || 0), step: "0.1", value: "0" });
    this.time = el("span", { class: "time small", text: `00:00 / ${formatDuration(r.duration_s)}` });
    this.canvas = el("canvas", { class: "wave", "aria-hidden": "true" });
    this.progress = el("div", { class: "wave-progress", "aria-hidden": "true" });
    this.raw = r.raw_url ? el("input", { type: "checkbox", role: "switch", class: "raw", id: `raw-${r.id}` }) : null;
    this.titleNode = el("strong", { class: "rec-title" });
    this.head = el("div", { class: "rec-head" }, this.titleNode,
      el("span", { class: "muted", text: formatDuration(r.duration_s) }),
      r.title ? el("span", { class: "muted small", text: formatDate(r.started_at) }) : null,
      el("span", { class: "muted small", text: r.denoise ? "began with noise removal" : "began without noise removal" }));
    this.downloads = el("span", { class: "downloads" });
    const controls = el("div", { class: "player" }, this.play, this.seek, this.time,
      this.raw && el("span", { class: "switch-row small" }, this.raw,
        el("label", { for: `raw-${r.id}`, text: "Original (before noise removal)" })),
      this.downloads);
    this.ownerRow = this.hooks.owner ? el("div", { class: "owner-actions" }) : null;
    this.node = el("li", { class: "recording", "data-id": String(r.id) }, this.head,
      el("div", { class: "wave-wrap" }, this.canvas, this.progress), controls, this.ownerRow, this.audio);
    this.renderTitle();
    return this.node;
  }

  /** Everything that names the recording (its title may change). */
  renderTitle() {
    const r = this.rec;
    this.titleNode.textContent = this.title;
    this.play.setAttribute("aria-label", `${this.audio.paused ? "Play" : "Pause"} ${this.label}`);
    this.seek.setAttribute("aria-label", `Position in ${this.label}`);
    this.downloads.replaceChildren(
      el("a", { href: r.audio_url, download: "", class: "small-button", "aria-label": `Download ${formatBytes(r.audio_bytes)}: ${this.label}` },
        "Download ", el("span", { class: "size", text: formatBytes(r.audio_bytes) })),
      r.raw_url && el("a", { href: r.raw_url, download: "", class: "small-button",
        "aria-label": `Original ${formatBytes(r.raw_bytes)}: download the original of ${this.label}` },
      "Original ", el("span", { class: "size", text: formatBytes(r.raw_bytes) })));
    if (this.ownerRow) this.renderOwnerActions();
  }

  renderOwnerActions(focus) {
    this.ownerRow.replaceChildren(
      el("button", { type: "button", class: "small-button", "data-role": "rename", text: "Rename",
        "aria-label": `Rename ${this.label}`, onclick: () => this.editTitle() }),
      el("button", { type: "button", class: "small-button", "data-role": "delete", text: "Delete",
        "aria-label": `Delete ${this.label}`, onclick: () => this.confirmDelete() }));
    if (focus) this.ownerRow.querySelector(`[data-role="${focus}"]`).focus();
  }

  editTitle() {
    const id = `title-${this.rec.id}`;
    const input = el("input", { type: "text", id, class: "title-input", maxlength: String(TITLE_MAX),
      value: this.rec.title || "", placeholder: formatDate(this.rec.started_at), "aria-describedby": `${id}-error` });
    const error = el("span", { id: `${id}-error`, class: "field-error small", role: "alert" });
    const form = el("form", { class: "rename-form" },
      el("label", { for: id, text: "Title" }), input,
      el("button", { type: "submit", class: "small-button primary", text: "Save" }),
      el("button", { type: "button", class: "small-button", text: "Cancel", onclick: () => this.renderOwnerActions("rename") }),
      error);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await this.hooks.rename(this, input.value.trim());
        this.renderOwnerActions("rename");
      } catch (err) {
        input.setAttribute("aria-invalid", "true");
        error.textContent = err.message;
        input.focus();
      }
    });
    input.addEventListener("keydown", (event) => event.key === "Escape" && this.renderOwnerActions("rename"));
    this.ownerRow.replaceChildren(form);
    input.focus();
    input.select();
  }

  confirmDelete() {
    const keep = el("button", { type: "button", class: "small-button", text: "Keep it", onclick: () => this.renderOwnerActions("delete") });
    const error = el("span", { class: "field-error small", role: "alert" });
    const yes = el("button", { type: "button", class: "small-button danger", text: "Delete for good",
      onclick: () => this.hooks.remove(this).catch((err) => (error.textContent = err.message)) });
    this.ownerRow.replaceChildren(
      el("span", { class: "confirm", role: "group", "aria-label": `Delete ${this.label}?` },
        el("span", { class: "small", text: "Delete this recording and its files for good?" }), yes, keep, error));
    keep.focus();
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
    this.hooks.onPlay(this);
    try {
      await this.audio.play();
    } catch (err) {
      if (err.name !== "AbortError") this.time.textContent = "This recording could not be played.";
    }
  }

  setPlaying(playing) {
    this.play.textContent = playing ? "Pause" : "Play";
    this.play.setAttribute("aria-label", `${playing ? "Pause" : "Play"} ${this.label}`);
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

  /** Swap between the denoised and the original file at the same position, and its picture. */
  switchVersion() {
    const { audio } = this;
    const at = audio.currentTime;
    const wasPlaying = !audio.paused;
    audio.src = this.version === "raw" ? this.rec.raw_url : this.rec.audio_url;
    audio.addEventListener("loadedmetadata", () => {
      audio.currentTime = at;
      if (wasPlaying) this.start();
    }, { once: true });
    audio.load();
    this.drawWaveform();
  }

  async drawWaveform() {
    const version = this.version;
    if (!this.peaks[version]) {
      try {
        this.peaks[version] = await loadPeaks(version === "raw" ? this.rec.raw_peaks_url : this.rec.peaks_url);
      } catch {
        this.peaks[version] = null; // a missing picture is not worth an error message
      }
    }
    if (version !== this.version) return; // switched again meanwhile
    this.node.dataset.wave = version;
    this.node.classList.toggle("no-wave", !this.peaks[version]);
    this.redraw();
  }

  redraw() {
    const peaks = this.peaks[this.version];
    if (peaks) drawPeaks(this.canvas, peaks);
  }
}
