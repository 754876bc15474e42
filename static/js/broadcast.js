// The main page's streaming panel: microphone -> server, settings, timer, listeners.

import { api, beacon, serverNow } from "./api.js";
import { debounce, formatDuration } from "./format.js";
import { LevelMeter } from "./meter.js";
import { publish } from "./webrtc_client.js";

const SETTINGS_DELAY_MS = 200;
// The browser's own processing would fight the server's denoiser; we want the raw microphone.
const MIC_CONSTRAINTS = { audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } };

function micMessage(err) {
  switch (err && err.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Microphone access was blocked. Allow the microphone for this site in your browser settings, then press Start streaming again.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No microphone was found. Connect one and press Start streaming again.";
    case "NotReadableError":
    case "AbortError":
      return "Your microphone could not be opened; another application may be using it. Close it and try again.";
    default:
      return "The microphone could not be started. Check that one is connected and try again.";
  }
}

async function openMicrophone() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error("This browser cannot use the microphone on this page. Open the site over HTTPS (or on localhost).");
  }
  try {
    return await navigator.mediaDevices.getUserMedia(MIC_CONSTRAINTS);
  } catch (err) {
    throw new Error(micMessage(err));
  }
}

function strengthText(db) {
  if (db >= 100) return "100 dB (full)";
  return db <= 0 ? "0 dB (no reduction)" : `${db} dB`;
}

export class Broadcaster {
  constructor({ announce }) {
    this.announce = announce;
    this.state = "idle"; // idle | starting | live | stopping
    this.mic = null;
    this.pc = null;
    this.startedAt = 0;
    this.sessionStarted = false;
    this.timer = 0;
    const $ = (id) => document.getElementById(id);
    this.nodes = {
      toggle: $("stream-toggle"), denoise: $("denoise"), strength: $("strength"), strengthValue: $("strength-value"),
      timer: $("timer"), listeners: $("listeners"), badge: $("my-live-badge"), state: $("stream-state"),
      message: $("stream-message"),
    };
    this.meter = new LevelMeter($("mic-meter"));
    this.nodes.toggle.addEventListener("click", () => {
      if (this.state === "idle") this.start();
      else if (this.state === "live") this.stop();
    });
    this.nodes.denoise.addEventListener("change", () => this.denoiseChanged());
    const sendStrength = debounce(() => this.pushSettings({ atten_lim_db: this.strength() }), SETTINGS_DELAY_MS);
    this.nodes.strength.addEventListener("input", () => {
      this.nodes.strengthValue.textContent = strengthText(this.strength());
      if (this.state === "live") sendStrength();
    });
    // Ask before leaving while live (the browser shows its own "leave site?" question)...
    window.addEventListener("beforeunload", (event) => {
      if (this.state === "live") event.preventDefault();
    });
    // ...and if the page goes anyway, stop the stream even though the page is going away.
    window.addEventListener("pagehide", () => {
      if (this.state === "live" || this.state === "starting") beacon("/api/stream/stop/");
    });
  }

  strength() {
    return Number(this.nodes.strength.value);
  }

  setMessage(text) {
    this.nodes.message.textContent = text;
  }

  setListeners(count) {
    this.nodes.listeners.textContent = String(count);
  }

  render() {
    const { toggle, badge, state, strength, denoise } = this.nodes;
    const live = this.state === "live";
    toggle.textContent = { idle: "Start streaming", starting: "Starting…", live: "Stop streaming", stopping: "Stopping…" }[this.state];
    // aria-disabled rather than disabled: the button keeps keyboard focus while it is busy
    toggle.setAttribute("aria-disabled", String(this.state === "starting" || this.state === "stopping"));
    toggle.classList.toggle("danger", live);
    toggle.classList.toggle("primary", !live);
    badge.hidden = !live;
    strength.disabled = !denoise.checked;
    state.textContent = {
      idle: "You are not live. Press Start streaming to go live to your friends.",
      starting: "Connecting your microphone…",
      live: "You are live. Your friends can listen now.",
      stopping: "Ending your stream…",
    }[this.state];
  }

  async start() {
    this.setMessage("");
    this.state = "starting";
    this.render();
    try {
      this.mic = await openMicrophone();
      this.meter.attach(this.mic);
      const session = await this.startSession();
      this.pc = await publish(this.mic, session.session_id, { onLost: () => this.lost() });
      this.goLive(session.started_at);
    } catch (err) {
      await this.teardown(Boolean(this.sessionStarted));
      this.setMessage(err.message || "Your stream could not be started. Try again.");
    }
  }

  async startSession() {
    try {
      const session = await api("/api/stream/start/", {
        method: "POST",
        body: { denoise: this.nodes.denoise.checked, atten_lim_db: this.strength() },
      });
      this.sessionStarted = true;
      return session;
    } catch (err) {
      if (err.status === 409) {
        throw new Error("You are already live from another tab or device. Stop that stream first, then try again.");
      }
      throw err;
    }
  }

  goLive(startedAt) {
    this.state = "live";
    const parsed = Date.parse(startedAt);
    this.startedAt = Number.isNaN(parsed) ? serverNow() : parsed;
    this.tick();
    this.timer = setInterval(() => this.tick(), 500);
    this.render();
    this.announce("You are live.");
  }

  tick() {
    this.nodes.timer.textContent = formatDuration((serverNow() - this.startedAt) / 1000);
  }

  async stop() {
    this.state = "stopping";
    this.render();
    await this.teardown(true);
    this.announce("Your stream has ended. It is saved in your recordings.");
  }

  /** The server's word on my stream: if it ended while this page thinks it is live, reset. */
  serverStatus({ is_streaming: streaming }) {
    if (streaming || this.state !== "live") return;
    this.setMessage("The server ended your stream. Press Start streaming to go live again.");
    this.teardown(false);
  }

  lost() {
    if (this.state !== "live") return;
    this.setMessage("The connection to the server was lost, so your stream stopped. Press Start streaming to go live again.");
    this.teardown(true);
  }

  /** Tell the server to stop (if a session was started), then release everything. The order
   * matters: the server ends the stream as "stopped" rather than as a dropped connection. */
  async teardown(stopOnServer) {
    clearInterval(this.timer);
    if (stopOnServer && this.sessionStarted) {
      try {
        await api("/api/stream/stop/", { method: "POST" });
      } catch (err) {
        this.setMessage(err.message);
      }
    }
    if (this.pc) this.pc.close();
    if (this.mic) this.mic.getTracks().forEach((t) => t.stop());
    this.meter.detach();
    this.pc = null;
    this.mic = null;
    this.sessionStarted = false;
    this.state = "idle";
    this.nodes.timer.textContent = "00:00";
    this.setListeners(0);
    this.render();
  }

  // ----- live settings -----

  denoiseChanged() {
    this.render();
    if (this.state === "live") this.pushSettings({ denoise: this.nodes.denoise.checked });
  }

  async pushSettings(change) {
    try {
      await api("/api/stream/settings/", { method: "PATCH", body: change });
      if ("denoise" in change) this.announce(change.denoise ? "Noise removal on." : "Noise removal off.");
    } catch (err) {
      if ("denoise" in change) this.nodes.denoise.checked = !change.denoise;
      this.render();
      this.setMessage(`Your change was not applied: ${err.message}`);
    }
  }
}
