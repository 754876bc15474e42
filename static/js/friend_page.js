// Friend page: the friend's live status (ws/stream/<username>/), listening, and recordings.

import { api, serverNow } from "./api.js";
import { formatDuration } from "./format.js";
import { LevelMeter } from "./meter.js";
import { LiveSocket } from "./presence.js";
import { RecordingList } from "./recordings.js";
import { subscribe } from "./webrtc_client.js";

const username = JSON.parse(document.getElementById("friend-username").textContent);
const $ = (id) => document.getElementById(id);
const nodes = {
  badge: $("live-badge"), liveFor: $("live-for"), timer: $("live-timer"), state: $("live-state"),
  toggle: $("listen-toggle"), volume: $("volume"), volumeValue: $("volume-value"), audio: $("live-audio"),
  indicator: $("denoise-indicator"), listeners: $("listener-count"), message: $("listen-message"),
  announcer: $("announcer"),
};
const meter = nodes.toggle ? new LevelMeter($("heard-meter")) : null;
const recordings = new RecordingList(username);
const live = { streaming: null, startedAt: 0, timer: 0 };
const listener = { state: "idle", pc: null }; // idle | connecting | listening

function announce(text) {
  nodes.announcer.textContent = "";
  setTimeout(() => (nodes.announcer.textContent = text), 50);
}

function setMessage(text) {
  nodes.message.textContent = text;
}

// ----- the friend's stream -----

function tick() {
  nodes.timer.textContent = formatDuration((serverNow() - live.startedAt) / 1000);
}

function showSettings({ denoise, atten_lim_db: limit }) {
  if (denoise === undefined) return;
  nodes.indicator.dataset.denoise = denoise ? "on" : "off";
  const strength = limit === undefined || limit >= 100 ? "full strength" : `up to ${Math.round(limit)} dB`;
  nodes.indicator.textContent = denoise ? `✓ On (${strength})` : "✗ Off: you hear the unprocessed microphone";
}

function applyStatus(status) {
  const streaming = Boolean(status.is_streaming);
  if (status.listeners !== undefined) nodes.listeners.textContent = String(status.listeners);
  showSettings(status);
  const parsed = Date.parse(status.started_at);
  if (streaming && !Number.isNaN(parsed)) live.startedAt = parsed;
  if (streaming === live.streaming) return;
  const first = live.streaming === null;
  live.streaming = streaming;
  clearInterval(live.timer);
  nodes.badge.hidden = !streaming;
  nodes.liveFor.hidden = !streaming;
  if (streaming) {
    if (!live.startedAt) live.startedAt = serverNow();
    tick();
    live.timer = setInterval(tick, 500);
    nodes.state.textContent = `${username} is live now.`;
    if (!first) {
      announce(`${username} is live now.`);
      recordings.load();
    }
  } else {
    live.startedAt = 0;
    nodes.listeners.textContent = "0";
    nodes.indicator.dataset.denoise = "unknown";
    nodes.indicator.textContent = "Not live";
    nodes.state.textContent = first
      ? `${username} is not live right now. This page updates by itself when they go live.`
      : `${username}'s stream has ended. The recording appears below.`;
    if (!first) {
      announce(`${username}'s stream has ended.`);
      stopListening();
      recordings.refreshUntilFinished();
    }
  }
  renderListener();
}

function onMessage(msg) {
  switch (msg.type) {
    case "streaming_status":
    case "stream_state":
      applyStatus(msg);
      break;
    case "listeners":
      nodes.listeners.textContent = String(msg.count);
      break;
    case "settings":
      showSettings(msg);
      break;
    default:
      break;
  }
}

// ----- listening -----

function renderListener() {
  if (!nodes.toggle) return;
  const words = { idle: "Start listening", connecting: "Connecting…", listening: "Stop listening" };
  nodes.toggle.textContent = words[listener.state];
  nodes.toggle.disabled = listener.state === "idle" && !live.streaming;
  // busy, not disabled: keyboard focus stays on the button while it connects
  nodes.toggle.setAttribute("aria-disabled", String(listener.state === "connecting"));
  nodes.toggle.classList.toggle("danger", listener.state === "listening");
  nodes.toggle.classList.toggle("primary", listener.state !== "listening");
}

function listenError(err) {
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

async function startListening() {
  setMessage("");
  listener.state = "connecting";
  renderListener();
  try {
    const { pc, stream } = await subscribe(username, { onLost: lost });
    listener.pc = pc;
    // Chromium feeds Web Audio from a remote WebRTC stream only while a media element plays it.
    nodes.audio.srcObject = stream;
    nodes.audio.volume = Number(nodes.volume.value) / 100;
    await nodes.audio.play();
    meter.attach(stream);
    listener.state = "listening";
    announce(`Listening to ${username}.`);
  } catch (err) {
    stopListening();
    setMessage(listenError(err));
  }
  renderListener();
}

function stopListening() {
  if (listener.pc) listener.pc.close();
  listener.pc = null;
  nodes.audio.srcObject = null;
  if (meter) meter.detach();
  listener.state = "idle";
  renderListener();
}

function lost() {
  if (listener.state !== "listening") return;
  stopListening();
  if (live.streaming) setMessage("The connection was lost. Press Start listening to reconnect.");
}

if (nodes.toggle) {
  nodes.toggle.addEventListener("click", () => {
    if (listener.state === "idle") startListening();
    else if (listener.state === "listening") stopListening();
  });
  nodes.volume.addEventListener("input", () => {
    nodes.audio.volume = Number(nodes.volume.value) / 100;
    nodes.volumeValue.textContent = `${nodes.volume.value}%`;
  });
}

// ----- start-up -----

// Being on a friend's page still counts as online: keep a presence socket open too.
new LiveSocket("/ws/presence/", { onMessage: () => {} }).start();

const statusUrl = `/api/stream/status/${encodeURIComponent(username)}/`;
api(statusUrl)
  .then(applyStatus)
  .catch((err) => setMessage(err.message));
recordings.load();
new LiveSocket(`/ws/stream/${encodeURIComponent(username)}/`, {
  onMessage,
  pollUrl: statusUrl,
  onPoll: applyStatus,
  onFinalClose: (code) => {
    stopListening();
    nodes.badge.hidden = true;
    if (nodes.toggle) nodes.toggle.disabled = true;
    nodes.state.textContent =
      code === 4403
        ? `You and ${username} are not friends any more, so this page no longer updates.`
        : "This page stopped updating. Reload it to try again.";
  },
}).start();
