// The main page's on-air panel: microphone -> server, its state in words and colour, the time
// live, the listeners. One state machine (State, changed only in setState) drives the page.
//
// Resume: the session id from /api/stream/start/ is kept in this tab's sessionStorage. After a
// reload, or when the connection drops, the page offers the same session a new connection
// (POST /api/webrtc/offer/ with that id); the server keeps the session through a short grace.
// If it is gone (server restarted, grace over) and we were live, a new stream starts at once,
// and the page says it is a new recording. Other tabs learn from the presence socket that the
// user is live and offer to stop that stream instead of a Start that would fail.

import { api } from "./api.js";
import { LevelMeter } from "./meter.js";
import { openMicrophone } from "./microphone.js";
import { $, LiveTimer, MessageLine, renderToggle } from "./ui.js";
import { publish } from "./webrtc_client.js";

export const State = Object.freeze({
  IDLE: "idle",
  STARTING: "starting",
  LIVE: "live",
  RECONNECTING: "reconnecting",
  STOPPING: "stopping",
  ENDED: "ended",
  ELSEWHERE: "elsewhere",
});

const LOOK = {
  idle: { chip: "Not live", line: "Press Go live and your friends can listen.", button: "Go live" },
  starting: { chip: "Connecting…", line: "Connecting your microphone to the server…", button: "Connecting…", busy: true },
  live: { chip: "Live", line: "You are live. Your friends can listen now.", button: "Stop streaming", stops: true },
  reconnecting: { chip: "Reconnecting…", line: "The connection dropped. Reconnecting your stream; keep talking.",
    button: "Stop streaming", stops: true },
  stopping: { chip: "Ending…", line: "Ending your stream…", button: "Stopping…", busy: true, stops: true },
  ended: { chip: "Ended", line: "Your stream has ended. It is saved in your recordings.", button: "Go live again" },
  elsewhere: { chip: "Live in another tab", line: "You are live from another tab or device.",
    button: "Stop it here", stops: true },
};

const STORAGE_KEY = "rd-live-session";
// A "disconnected" connection often heals by itself once the network is back: wait that long
// before offering the server a new one (the old one is kept until a new one works).
const HEAL_WAIT_MS = 8000;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 8000;
const GIVE_UP_MS = 120000;
export class Broadcaster {
  /** @param {{announce: (text: string) => void, clock: import("./api.js").ServerClock,
   *   settings: () => {denoise: boolean, atten_lim_db: number}}} deps */
  constructor({ announce, clock, settings }) {
    this.announce = announce;
    this.clock = clock;
    this.settings = settings;
    this.state = State.IDLE;
    this.mic = null;
    this.pc = null;
    this.session = null; // {session_id, started_at} of the stream this tab runs
    this.healTimer = 0;
    this.retry = { timer: 0, delay: RETRY_MIN_MS, since: 0 };
    this.nodes = {
      panel: $("on-air"), toggle: $("stream-toggle"), chip: $("stream-chip"), line: $("stream-state"),
      listeners: $("listeners"), listenerNames: $("listener-names"),
    };
    this.message = new MessageLine($("stream-message"));
    this.timer = new LiveTimer($("timer"), clock);
    const ring = $("level-ring");
    this.meter = new LevelMeter($("mic-meter"), (level) => ring.style.setProperty("--level", level.toFixed(3)));
    this.nodes.toggle.addEventListener("click", () => this.pressed());
    // Ask before leaving while live (the browser shows its own "leave site?" question). A page
    // that goes anyway does not stop the stream: a reload resumes it, and the server ends a
    // stream whose page is gone once its grace period is over.
    window.addEventListener("beforeunload", (event) => {
      if (this.state === State.LIVE || this.state === State.RECONNECTING) event.preventDefault();
    });
  }

  // ----- the one place the state changes -----

  setState(state, message) {
    this.state = state;
    if (message !== undefined) this.message.show(message, { error: state !== State.LIVE });
    const look = LOOK[state];
    renderToggle(this.nodes.toggle, { text: look.button, busy: Boolean(look.busy), stops: Boolean(look.stops) });
    this.nodes.panel.dataset.state = state;
    this.nodes.chip.textContent = look.chip;
    this.nodes.line.textContent = look.line;
    const onAir = [State.LIVE, State.RECONNECTING, State.STOPPING].includes(state);
    if (!onAir && state !== State.ELSEWHERE) {
      this.timer.stop();
      this.setListeners(0, []);
    }
  }

  pressed() {
    switch (this.state) {
      case State.IDLE:
      case State.ENDED:
        this.start();
        break;
      case State.LIVE:
      case State.RECONNECTING:
      case State.ELSEWHERE:
        this.stop();
        break;
      default:
        break; // busy
    }
  }

  setListeners(count, names) {
    this.nodes.listeners.textContent = String(count);
    const shown = Array.isArray(names) ? names : [];
    this.nodes.listenerNames.textContent = shown.length ? shown.join(", ") : count ? "" : "No one yet";
  }

  // ----- going live -----

  async start() {
    this.setState(State.STARTING, "");
    try {
      await this.ensureMicrophone();
      const session = await this.startSession();
      await this.connect(session);
      this.setState(State.LIVE);
      this.announce("You are live.");
    } catch (err) {
      const elsewhere = Boolean(err.cause && err.cause.status === 409);
      await this.release(Boolean(this.session));
      this.forget();
      this.setState(elsewhere ? State.ELSEWHERE : State.IDLE, err.message || "Your stream could not be started. Try again.");
    }
  }

  async ensureMicrophone() {
    if (this.mic && this.mic.getAudioTracks().some((t) => t.readyState === "live")) return;
    this.mic = await openMicrophone();
    this.meter.attach(this.mic);
  }

  async startSession() {
    try {
      const session = await api("/api/stream/start/", { method: "POST", body: this.settings(), clock: this.clock });
      this.remember(session);
      return session;
    } catch (err) {
      if (err.status === 409) {
        throw new Error("You are already live from another tab or device. Stop it here with the button, or from there.", { cause: err });
      }
      throw err;
    }
  }

  remember(session) {
    this.session = session;
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
  }

  forget() {
    this.session = null;
    sessionStorage.removeItem(STORAGE_KEY);
  }

  /** Publish the microphone to `session`; the connection this page had is closed only once
   * the new one works (while it is merely disconnected it may still heal). */
  async connect(session) {
    const pc = await publish(this.mic, session.session_id, {
      onState: (state) => this.pc === pc && this.connectionChanged(state),
      onLost: () => this.pc === pc && this.reconnectSoon(0),
    });
    if (this.pc) this.pc.close();
    this.pc = pc;
    const parsed = Date.parse(session.started_at);
    this.timer.start(Number.isNaN(parsed) ? this.clock.now() : parsed);
    this.retry.delay = RETRY_MIN_MS;
    this.retry.since = 0;
  }

  // ----- staying live -----

  connectionChanged(state) {
    clearTimeout(this.healTimer);
    if (state === "connected" && this.state === State.RECONNECTING) {
      clearTimeout(this.retry.timer);
      this.retry.since = 0;
      this.setState(State.LIVE, "");
      this.announce("Reconnected: you are live again.");
    } else if (state === "disconnected" && this.state === State.LIVE) {
      this.setState(State.RECONNECTING);
      this.announce("Connection lost; reconnecting.");
      this.reconnectSoon(HEAL_WAIT_MS);
    }
  }

  reconnectSoon(delayMs) {
    if (![State.LIVE, State.RECONNECTING].includes(this.state)) return;
    if (this.state === State.LIVE) {
      this.setState(State.RECONNECTING);
      this.announce("Connection lost; reconnecting.");
    }
    if (!this.retry.since) this.retry.since = Date.now();
    clearTimeout(this.retry.timer);
    this.retry.timer = setTimeout(() => this.reconnect(), delayMs);
  }

  async reconnect() {
    if (this.state !== State.RECONNECTING) return;
    if (this.pc && this.pc.connectionState === "connected") {
      this.setState(State.LIVE, "");
      return;
    }
    try {
      const note = await this.resumeOrRestart();
      this.setState(State.LIVE, note);
      this.announce(note || "Reconnected: you are live again.");
    } catch (err) {
      if (this.state !== State.RECONNECTING) return; // stopped meanwhile
      if (Date.now() - this.retry.since > GIVE_UP_MS) {
        await this.release(false);
        this.setState(State.ENDED, "The server could not be reached for two minutes, so your stream stopped. Press Go live again when you are back online.");
        return;
      }
      // 409: the server still holds the old connection, which may yet heal or time out
      const why = err.status === 409 ? "waiting for the connection to come back." : err.message;
      this.message.show(`Still reconnecting: ${why}`, { error: true });
      this.retry.delay = Math.min(this.retry.delay * 2, RETRY_MAX_MS);
      this.retry.timer = setTimeout(() => this.reconnect(), this.retry.delay);
    }
  }

  /** The same session if the server still has it, else a new one (a new recording); resolves
   * to what the user should be told ("" for a plain resume). */
  async resumeOrRestart() {
    try {
      await this.connect(this.session);
      return "";
    } catch (err) {
      if (err.status !== 404) throw err;
    }
    this.forget();
    await this.connect(await this.startSession());
    return "Your stream goes on as a new recording: the server had ended the old one while you were disconnected.";
  }

  /** On load: this tab was live before a reload? Take the stream back. Else show what is true. */
  async resume(status) {
    const saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "null");
    if (!status.is_streaming) {
      if (saved) this.forget();
      this.setState(saved ? State.ENDED : State.IDLE, saved ? "Your stream ended while the page was away." : undefined);
      return;
    }
    if (!saved) {
      this.serverStatus(status); // live from another tab or device
      return;
    }
    this.session = saved;
    this.setState(State.STARTING);
    try {
      await this.ensureMicrophone();
      await this.connect(saved);
      this.setState(State.LIVE, "");
      this.announce("You are live again.");
    } catch (err) {
      await this.release(false);
      this.forget();
      const words = { 404: "Your stream ended while the page reloaded.",
        409: "The server still holds your stream from before the reload. Press Stop it here, or wait: it ends by itself." };
      this.setState(err.status === 404 ? State.ENDED : State.ELSEWHERE, words[err.status] || err.message);
    }
  }

  /** The server's word on my stream (presence socket or a status check). */
  serverStatus({ is_streaming: streaming, started_at: startedAt }) {
    if (streaming) {
      if (this.state === State.IDLE || this.state === State.ENDED) this.setState(State.ELSEWHERE);
      if (this.state === State.ELSEWHERE) {
        const parsed = Date.parse(startedAt);
        if (!Number.isNaN(parsed)) this.timer.start(parsed);
      }
      return;
    }
    if (this.state === State.ELSEWHERE) this.setState(State.IDLE, "");
    else if (this.state === State.LIVE) {
      this.release(false);
      this.forget();
      this.setState(State.ENDED, "Your stream was ended elsewhere (another tab, device, or the server).");
    }
  }

  // ----- stopping -----

  async stop() {
    const here = this.state !== State.ELSEWHERE;
    this.setState(State.STOPPING);
    const stopped = await this.release(true);
    this.forget();
    this.setState(here ? State.ENDED : State.IDLE, stopped ? "" : undefined);
    this.announce(here ? "Your stream has ended. It is saved in your recordings." : "The stream in your other tab has ended.");
  }

  /** Tell the server to stop (when asked), then release everything. The order matters: the
   * server ends the stream as "stopped" rather than as a dropped connection. False when the
   * server could not be told. */
  async release(stopOnServer) {
    clearTimeout(this.healTimer);
    clearTimeout(this.retry.timer);
    let told = true;
    if (stopOnServer) {
      try {
        await api("/api/stream/stop/", { method: "POST" });
      } catch (err) {
        told = false;
        this.message.show(err.message, { error: true });
      }
    }
    if (this.pc) this.pc.close();
    if (this.mic) this.mic.getTracks().forEach((t) => t.stop());
    this.meter.detach();
    this.pc = null;
    this.mic = null;
    return told;
  }

  // ----- live settings -----

  /** Apply noise settings to the running stream (nothing to do when not live here). */
  async pushSettings(change) {
    if (this.state !== State.LIVE && this.state !== State.RECONNECTING) return true;
    try {
      await api("/api/stream/settings/", { method: "PATCH", body: change });
      return true;
    } catch (err) {
      this.message.show(`Your change was not applied to the live stream: ${err.message}`, { error: true });
      return false;
    }
  }
}
