// Listening to a friend's live stream, and staying with it: a dropped connection is retried
// with backoff under "Reconnecting…"; a stream that ends and comes back within a minute (the
// broadcaster's page reloaded, the server restarted) is joined again without a click.

import { LevelMeter } from "./meter.js";
import { $, renderToggle } from "./ui.js";
import { subscribe } from "./webrtc_client.js";

export const ListenState = Object.freeze({
  IDLE: "idle",
  CONNECTING: "connecting",
  LISTENING: "listening",
  RECONNECTING: "reconnecting",
});

const HEAL_WAIT_MS = 8000; // a "disconnected" connection often heals by itself: wait before replacing it
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 8000;
const REJOIN_MS = 60000;

function listenError(err, username) {
  switch (err.status) {
    case 403:
      return `You can only listen to friends, and you and ${username} are not friends any more.`;
    case 404:
      return `${username} is not live any more.`;
    case 503:
      return `${username}'s stream has as many listeners as it can take. Try again in a minute.`;
    default:
      return err.message || "Listening could not start. Try again.";
  }
}

export class Listener {
  /** @param {{username: string, announce: (t: string) => void, message: import("./ui.js").MessageLine}} deps */
  constructor({ username, announce, message }) {
    this.username = username;
    this.announce = announce;
    this.message = message;
    this.state = ListenState.IDLE;
    this.pc = null;
    this.leave = null; // tells the server this connection is given up
    this.friendLive = false;
    this.rejoinUntil = 0;
    this.retry = { timer: 0, delay: RETRY_MIN_MS };
    this.nodes = { toggle: $("listen-toggle"), volume: $("volume"), volumeValue: $("volume-value"),
      audio: $("live-audio"), state: $("listen-state") };
    this.meter = new LevelMeter($("heard-meter"));
    this.nodes.toggle.addEventListener("click", () => {
      if (this.state === ListenState.IDLE) this.start();
      else this.stop();
    });
    this.nodes.volume.addEventListener("input", () => {
      this.nodes.audio.volume = Number(this.nodes.volume.value) / 100;
      this.nodes.volumeValue.textContent = `${this.nodes.volume.value}%`;
    });
  }

  setState(state) {
    this.state = state;
    const words = { idle: "Listen", connecting: "Connecting…", listening: "Stop listening", reconnecting: "Stop listening" };
    renderToggle(this.nodes.toggle, { text: words[state], busy: state === ListenState.CONNECTING,
      stops: state === ListenState.LISTENING || state === ListenState.RECONNECTING });
    this.nodes.state.textContent = {
      idle: "",
      connecting: "Connecting…",
      listening: `You are listening to ${this.username}.`,
      reconnecting: "Reconnecting… the sound comes back by itself.",
    }[state];
    this.nodes.toggle.closest("section").dataset.listen = state;
  }

  start() {
    this.message.clear();
    this.setState(ListenState.CONNECTING);
    return this.connect();
  }

  async connect() {
    clearTimeout(this.retry.timer);
    try {
      const { pc, stream, leave } = await subscribe(this.username, {
        onState: (state) => this.pc === pc && this.connectionChanged(state),
        onLost: () => this.pc === pc && this.lost(0),
      });
      if (this.state === ListenState.IDLE) { // stopped while connecting
        pc.close();
        leave();
        return;
      }
      this.drop(); // the old connection, if any, only now: it might have healed meanwhile
      this.pc = pc;
      this.leave = leave;
      // Chromium feeds Web Audio from a remote WebRTC stream only while a media element plays it.
      this.nodes.audio.srcObject = stream;
      this.nodes.audio.volume = Number(this.nodes.volume.value) / 100;
      await this.nodes.audio.play();
      this.meter.attach(stream);
      const again = this.state === ListenState.RECONNECTING;
      this.retry.delay = RETRY_MIN_MS;
      this.message.clear();
      this.setState(ListenState.LISTENING);
      this.announce(again ? `Reconnected to ${this.username}.` : `Listening to ${this.username}.`);
    } catch (err) {
      if (this.state === ListenState.RECONNECTING && this.friendLive && err.status !== 403) {
        this.retry.delay = Math.min(this.retry.delay * 2, RETRY_MAX_MS);
        this.retry.timer = setTimeout(() => this.connect(), this.retry.delay);
        return;
      }
      if (this.state === ListenState.RECONNECTING && err.status !== 403) return; // waits for the stream
      this.stop();
      this.message.show(listenError(err, this.username), { error: true });
    }
  }

  connectionChanged(state) {
    if (state === "connected" && this.state === ListenState.RECONNECTING) {
      clearTimeout(this.retry.timer);
      this.message.clear();
      this.setState(ListenState.LISTENING);
    } else if (state === "disconnected" && this.state === ListenState.LISTENING) {
      this.lost(HEAL_WAIT_MS);
    }
  }

  lost(delayMs) {
    if (this.state !== ListenState.LISTENING && this.state !== ListenState.RECONNECTING) return;
    if (this.state === ListenState.LISTENING) this.announce("Connection lost; reconnecting.");
    this.setState(ListenState.RECONNECTING);
    clearTimeout(this.retry.timer);
    this.retry.timer = setTimeout(() => this.connect(), delayMs);
  }

  /** The friend's stream started or ended (from the stream socket). */
  friendChanged(live) {
    const was = this.friendLive;
    this.friendLive = live;
    if (!live && was && this.state !== ListenState.IDLE) {
      // It may come back (a reload, a server restart): wait under "Reconnecting…" for a minute.
      this.rejoinUntil = Date.now() + REJOIN_MS;
      this.drop();
      this.setState(ListenState.RECONNECTING);
      clearTimeout(this.retry.timer);
      this.retry.timer = setTimeout(() => this.giveUp(), REJOIN_MS);
    } else if (live && !was && this.state === ListenState.RECONNECTING && Date.now() < this.rejoinUntil) {
      this.retry.delay = RETRY_MIN_MS;
      this.connect();
    }
  }

  giveUp() {
    if (this.state !== ListenState.RECONNECTING || this.friendLive) return;
    this.stop();
  }

  /** Close the connection but keep the intent (state) as it is. */
  drop() {
    if (this.pc) this.pc.close();
    if (this.leave) this.leave();
    this.pc = null;
    this.leave = null;
    this.nodes.audio.srcObject = null;
    this.meter.detach();
  }

  stop() {
    clearTimeout(this.retry.timer);
    this.rejoinUntil = 0;
    this.drop();
    this.setState(ListenState.IDLE);
  }
}
