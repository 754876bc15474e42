// The friend page's recordings: a page at a time (newest first), short ones hidden unless asked
// for, and for the owner rename (PATCH) and delete (DELETE /api/recordings/<id>/).

import { api } from "./api.js";
import { formatDate } from "./format.js";
import { RecordingItem } from "./recording_item.js";
import { $, el } from "./ui.js";

const PAGE = 20;
const SHORT_S = 3;
const REFRESH_MS = 2000;
const REFRESH_TRIES = 30;

export class RecordingList {
  /** @param {{username: string, isSelf: boolean, announce: (t: string) => void,
   *   onLoaded: (lastEndedMs: number) => void}} deps */
  constructor({ username, isSelf, announce, onLoaded }) {
    this.username = username;
    this.isSelf = isSelf;
    this.announce = announce;
    this.onLoaded = onLoaded;
    this.nodes = { list: $("recordings"), empty: $("recordings-empty"), status: $("recordings-status"),
      more: $("recordings-more"), filter: $("short-filter"), showShort: $("show-short"),
      showShortLabel: $("show-short-label"), count: $("recordings-count"), heading: $("recordings-heading") };
    this.items = new Map();
    this.loaded = 0; // how many finished recordings the list shows (pages loaded so far)
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
    this.nodes.more.addEventListener("click", () => this.load({ more: true }));
    this.nodes.showShort.addEventListener("change", () => this.load());
  }

  url(offset, limit) {
    const minS = this.nodes.showShort.checked ? 0 : SHORT_S;
    return `/api/recordings/${encodeURIComponent(this.username)}/?limit=${limit}&offset=${offset}&min_s=${minS}`;
  }

  pauseOthers(current) {
    this.items.forEach((item) => item !== current && item.audio.pause());
  }

  /** Load the first page again (as many as are shown), or with `more` the next page. */
  async load({ more = false } = {}) {
    const offset = more ? this.loaded : 0;
    const limit = more ? PAGE : Math.max(PAGE, this.loaded);
    let page;
    try {
      page = await api(this.url(offset, limit));
    } catch (err) {
      this.nodes.status.textContent = err.message;
      return [];
    }
    this.nodes.status.textContent = "";
    this.render(page, more);
    return page.recordings;
  }

  render(page, more) {
    const finished = page.recordings.filter((r) => r.finished);
    const live = page.recordings.filter((r) => !r.finished);
    const keep = more ? new Map(this.items) : new Map();
    for (const rec of finished) {
      const existing = this.items.get(rec.id);
      keep.set(rec.id, existing || new RecordingItem(rec, {
        owner: this.isSelf,
        onPlay: (item) => this.pauseOthers(item),
        rename: (item, title) => this.rename(item, title),
        remove: (item) => this.remove(item),
      }));
    }
    for (const [id, item] of this.items) if (!keep.has(id)) item.audio.pause();
    const fresh = [...keep.values()].filter((item) => !this.items.has(item.rec.id));
    this.items = keep;
    this.loaded = keep.size;
    const inProgress = more ? [] : live.map((r) => el("li", { class: "recording in-progress" },
      el("strong", { text: formatDate(r.started_at) }), el("span", { class: "muted", text: " — recording now…" })));
    const kept = [...this.nodes.list.querySelectorAll("li.in-progress")];
    this.nodes.list.replaceChildren(...(more ? kept : inProgress), ...[...keep.values()].map((item) => item.node));
    fresh.forEach((item) => this.observer.observe(item.canvas));
    this.renderFooter(page);
    const latest = [...keep.values()][0];
    if (!more) this.onLoaded(latest ? Date.parse(latest.rec.started_at) + latest.rec.duration_s * 1000 : 0);
  }

  renderFooter({ total, short, next_offset: next }) {
    const { empty, more, filter, showShort, showShortLabel, count } = this.nodes;
    empty.hidden = this.nodes.list.children.length > 0 || short > 0;
    more.hidden = next == null;
    filter.hidden = !showShort.checked && !short;
    showShortLabel.textContent = showShort.checked
      ? `Show short recordings (under ${SHORT_S} s)`
      : `Show ${short} short recording${short === 1 ? "" : "s"} (under ${SHORT_S} s)`;
    count.textContent = total ? `(${total})` : "";
  }

  async rename(item, title) {
    const rec = await api(`/api/recordings/${item.rec.id}/`, { method: "PATCH", body: { title } });
    item.rec = { ...item.rec, title: rec.title };
    item.renderTitle();
    this.announce(title ? `Renamed to ${title}.` : "Title reset to the date.");
  }

  async remove(item) {
    await api(`/api/recordings/${item.rec.id}/`, { method: "DELETE" });
    const next = item.node.nextElementSibling;
    item.audio.pause();
    item.node.remove();
    this.items.delete(item.rec.id);
    this.announce(`Deleted ${item.label}.`);
    // Focus where the deleted row was, so keyboard users are not thrown to the top of the page.
    const target = next && next.querySelector("button.play");
    if (target) target.focus();
    else this.nodes.heading.focus();
    await this.load();
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
