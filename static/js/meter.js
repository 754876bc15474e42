// A level meter: Web Audio AnalyserNode -> a bar with role="meter" (and an optional callback,
// for the on-air ring). Each meter owns its AudioContext, created on first attach (call it from
// a click so the browser lets it run).

const FLOOR_DB = -60;
const ARIA_EVERY_MS = 250;
const FRAME_MS = 40;

export class LevelMeter {
  /** @param {HTMLElement} element  a `.meter` with a `.meter-fill` child and role="meter"
   *  @param {(level: number) => void} [onLevel]  0..1, about 25 times a second */
  constructor(element, onLevel = () => {}) {
    this.element = element;
    this.onLevel = onLevel;
    this.fill = element.querySelector(".meter-fill");
    this.context = null;
    this.source = null;
    this.analyser = null;
    this.frame = 0;
    this.lastAria = 0;
    this.db = -Infinity;
    this.buffer = null;
  }

  audioContext() {
    if (!this.context || this.context.state === "closed") this.context = new AudioContext();
    if (this.context.state === "suspended") this.context.resume();
    return this.context;
  }

  attach(stream) {
    this.detach();
    const ctx = this.audioContext();
    this.source = ctx.createMediaStreamSource(stream);
    this.analyser = ctx.createAnalyser();
    this.analyser.fftSize = 2048;
    this.buffer = new Float32Array(this.analyser.fftSize);
    // Analysis only: nothing is connected to the speakers here.
    this.source.connect(this.analyser);
    this.element.classList.add("active");
    let last = 0;
    const tick = (now) => {
      // ~25 updates a second look smooth and cost a fraction of redrawing every frame
      if (now - last >= FRAME_MS) {
        last = now;
        this.update();
      }
      this.frame = requestAnimationFrame(tick);
    };
    this.frame = requestAnimationFrame(tick);
  }

  detach() {
    cancelAnimationFrame(this.frame);
    if (this.source) this.source.disconnect();
    this.source = null;
    this.analyser = null;
    this.db = -Infinity;
    this.render(0);
    this.element.classList.remove("active");
  }

  update() {
    this.analyser.getFloatTimeDomainData(this.buffer);
    let sum = 0;
    for (const v of this.buffer) sum += v * v;
    const rms = Math.sqrt(sum / this.buffer.length);
    this.db = rms > 0 ? 20 * Math.log10(rms) : -Infinity;
    this.render(Math.min(1, Math.max(0, (this.db - FLOOR_DB) / -FLOOR_DB)));
  }

  render(level) {
    this.fill.style.clipPath = `inset(0 ${(100 - level * 100).toFixed(1)}% 0 0)`;
    this.onLevel(level);
    const now = performance.now();
    if (level === 0 || now - this.lastAria > ARIA_EVERY_MS) {
      this.lastAria = now;
      this.element.setAttribute("aria-valuenow", String(Math.round(level * 100)));
      this.element.setAttribute(
        "aria-valuetext",
        Number.isFinite(this.db) && this.db > FLOOR_DB ? `${Math.round(this.db)} dB` : "silent",
      );
    }
  }
}
