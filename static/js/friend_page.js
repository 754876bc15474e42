// Friend page: the friend's live status (ws/stream/<username>/), listening, and recordings.
// On your own page it speaks to you ("you"), shows no listening controls, and lets you manage
// your recordings. Everything the page holds lives in the FriendPage made at the bottom.

import { ServerClock, api } from "./api.js";
import { formatAgo } from "./format.js";
import { Listener } from "./listener.js";
import { describe, removesNoise } from "./noise.js";
import { LiveSocket } from "./presence.js";
import { RecordingList } from "./recordings.js";
import { $, Announcer, LiveTimer, MessageLine } from "./ui.js";

class FriendPage {
  constructor() {
    this.username = JSON.parse($("friend-username").textContent);
    this.isSelf = JSON.parse($("is-self").textContent);
    this.statusUrl = `/api/stream/status/${encodeURIComponent(this.username)}/`;
    this.nodes = {
      section: $("friend-live"), badge: $("live-badge"), liveFor: $("live-for"), state: $("live-state"),
      panel: $("listen-panel"), indicator: $("denoise-indicator"), listeners: $("listener-count"),
    };
    this.clock = new ServerClock();
    this.announcer = new Announcer($("announcer"));
    this.message = new MessageLine($("listen-message"));
    this.timer = new LiveTimer($("live-timer"), this.clock);
    this.streaming = null; // unknown until the server says
    this.lastLive = 0; // when the latest finished recording ended (ms), 0 if none
    this.endedHere = false; // the stream ended while this page was open
    const announce = (text) => this.announcer.say(text);
    this.listener = this.isSelf ? null : new Listener({ username: this.username, announce, message: this.message });
    this.recordings = new RecordingList({
      username: this.username, isSelf: this.isSelf, announce,
      onLoaded: (lastEnded) => this.learnLastLive(lastEnded),
    });
  }

  start() {
    // Being on a friend's page still counts as online: keep a presence socket open too.
    new LiveSocket("/ws/presence/", { onMessage: () => {} }).start();
    api(this.statusUrl, { clock: this.clock }).then((s) => this.applyStatus(s), (err) => this.message.show(err.message, { error: true }));
    this.recordings.load();
    new LiveSocket(`/ws/stream/${encodeURIComponent(this.username)}/`, {
      onMessage: (msg) => this.onMessage(msg),
      pollUrl: this.statusUrl,
      onPoll: (s) => this.applyStatus(s),
      onFinalClose: (code) => this.refused(code),
    }).start();
  }

  onMessage(msg) {
    switch (msg.type) {
      case "streaming_status":
      case "stream_state":
        this.applyStatus(msg);
        break;
      case "listeners":
        this.showListeners(msg.count);
        break;
      case "settings":
        this.showSettings(msg);
        break;
      case "source": // no audio from the broadcaster right now (a stalled tab or network), or back
        this.message.show(msg.message, { error: msg.state === "stalled" });
        break;
      case "listening": // the media server for listeners went away: reconnect when it is back
        if (msg.available === false && this.listener) this.listener.lost(0);
        break;
      default:
        break;
    }
  }

  showListeners(count) {
    if (this.nodes.listeners) this.nodes.listeners.textContent = String(count ?? 0);
  }

  /** What the listener hears, in words; null settings (not live) describe nothing. */
  showSettings({ denoise, atten_lim_db: limit }) {
    const words = describe(denoise, limit);
    if (!this.nodes.indicator || words === null) return;
    this.nodes.indicator.dataset.denoise = removesNoise(denoise, limit) ? "on" : "off";
    this.nodes.indicator.textContent = words;
  }

  applyStatus(status) {
    const streaming = Boolean(status.is_streaming);
    if (status.listeners != null) this.showListeners(status.listeners);
    this.showSettings(status);
    const parsed = Date.parse(status.started_at);
    if (streaming) this.timer.start(Number.isNaN(parsed) ? this.timer.startedAt || this.clock.now() : parsed);
    if (streaming === this.streaming) return;
    const first = this.streaming === null;
    this.streaming = streaming;
    this.nodes.section.dataset.live = String(streaming);
    this.nodes.badge.hidden = !streaming;
    this.nodes.liveFor.hidden = !streaming;
    if (this.nodes.panel) this.nodes.panel.hidden = !streaming;
    if (!streaming) this.timer.stop();
    this.endedHere = !streaming && !first;
    this.renderState();
    if (!first) {
      const who = this.isSelf ? "Your" : `${this.username}'s`;
      this.announcer.say(streaming ? `${this.isSelf ? "You are" : `${this.username} is`} live now.` : `${who} stream has ended.`);
      if (streaming) this.recordings.load();
      else this.recordings.refreshUntilFinished();
    }
    if (this.listener) this.listener.friendChanged(streaming);
  }

  renderState() {
    const self = this.isSelf;
    const name = this.username;
    let text;
    if (this.streaming) text = self ? "You are live now." : `${name} is live now.`;
    else if (this.endedHere) text = self ? "Your stream has ended. The recording appears below." : `${name}'s stream has ended. The recording appears below.`;
    else {
      const last = this.lastLive ? ` Last live ${formatAgo(this.lastLive, this.clock.now())}.` : "";
      text = self ? `You are not live.${last}` : `${name} is not live right now.${last} This page updates by itself when ${name} goes live.`;
    }
    this.nodes.state.textContent = text;
  }

  learnLastLive(lastEnded) {
    this.lastLive = lastEnded;
    if (this.streaming === false) this.renderState();
  }

  refused(code) {
    if (this.listener) this.listener.stop();
    this.nodes.badge.hidden = true;
    if (this.nodes.panel) this.nodes.panel.hidden = true;
    this.nodes.state.textContent = code === 4403
      ? `You and ${this.username} are not friends any more, so this page no longer updates.`
      : "This page stopped updating. Reload it to try again.";
  }
}

new FriendPage().start();
