// DOM helpers shared by every page: lookup, element building, screen-reader announcements,
// the running clock of a live stream, and the look of the pages' big toggle buttons.

import { formatDuration } from "./format.js";

/** document.getElementById, short. */
export const $ = (id) => document.getElementById(id);

/** Build an element: el("li", {class: "x", text: "hi", onclick: fn}, child...). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

/** Call fn once `ms` have passed without another call. */
export function debounce(fn, ms) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** A polite live region: say() a sentence to screen readers. */
export class Announcer {
  constructor(node) {
    this.node = node;
    this.timer = 0;
  }

  say(text) {
    // Clearing first makes screen readers repeat an identical sentence.
    clearTimeout(this.timer);
    this.node.textContent = "";
    this.timer = setTimeout(() => (this.node.textContent = text), 50);
  }
}

/** The "time live" clock: counts up from a start instant on the server's clock. */
export class LiveTimer {
  /** @param {HTMLElement} node  role="timer", named by a label
   *  @param {{now: () => number}} clock */
  constructor(node, clock) {
    this.node = node;
    this.clock = clock;
    this.startedAt = 0;
    this.interval = 0;
  }

  get running() {
    return this.interval !== 0;
  }

  /** Start (or move) the count from `startedAt` (ms since the epoch, server clock). */
  start(startedAt) {
    this.startedAt = startedAt;
    this.tick();
    if (!this.interval) this.interval = setInterval(() => this.tick(), 500);
  }

  stop() {
    clearInterval(this.interval);
    this.interval = 0;
    this.node.textContent = formatDuration(0);
  }

  seconds() {
    return (this.clock.now() - this.startedAt) / 1000;
  }

  tick() {
    this.node.textContent = formatDuration(this.seconds());
  }
}

/**
 * The look of a big on/off button: its words, busy (aria-disabled, so keyboard focus stays on
 * it while it works), and whether pressing it stops something (red) or starts it.
 */
export function renderToggle(button, { text, busy = false, stops = false, disabled = false }) {
  button.textContent = text;
  button.disabled = disabled;
  button.setAttribute("aria-disabled", String(busy));
  button.classList.toggle("danger", stops);
  button.classList.toggle("primary", !stops);
}

/** A message line (role alert or status) that can be an error or a confirmation. */
export class MessageLine {
  constructor(node, { fadeMs = 0 } = {}) {
    this.node = node;
    this.fadeMs = fadeMs;
    this.timer = 0;
  }

  show(text, { error = false } = {}) {
    clearTimeout(this.timer);
    this.node.textContent = text;
    this.node.classList.toggle("error", error);
    // Confirmations fade after a while; errors stay until the next action.
    if (text && !error && this.fadeMs) this.timer = setTimeout(() => this.clear(), this.fadeMs);
  }

  clear() {
    this.show("");
  }
}
