// WebRTC to the server: publish the microphone, or receive a friend's processed stream.
// The server (aiortc) does not trickle ICE, so offers are sent once gathering is complete.

import { api } from "./api.js";

const GATHER_TIMEOUT_MS = 3000;
const CONNECT_TIMEOUT_MS = 15000;
const ICE_FETCH_TIMEOUT_MS = 5000;
const FAILED =
  "The audio connection to the server could not be made. Check your network (a firewall may block it) and try again.";

export class ConnectionFailed extends Error {
  constructor(message) {
    super(message);
    this.name = "ConnectionFailed";
  }
}

/** The RTCIceServer list the page was rendered with (json_script id="ice-servers"). */
function iceServers() {
  const node = document.getElementById("ice-servers");
  try {
    return node ? JSON.parse(node.textContent) : [];
  } catch {
    return [];
  }
}

/**
 * A fresh RTCIceServer list: TURN credentials expire (TURN_TTL_S), so a page open for hours asks
 * again for each connection. Falls back to the page's list if the server does not answer.
 */
async function freshIceServers() {
  try {
    const body = await api("/api/ice-servers/", { signal: AbortSignal.timeout(ICE_FETCH_TIMEOUT_MS) });
    if (Array.isArray(body?.iceServers)) return body.iceServers;
  } catch {
    // fall through: the page's list, whose TURN entry may have expired, beats none
  }
  return iceServers();
}

function gatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      pc.removeEventListener("icegatheringstatechange", check);
      clearTimeout(timer);
      resolve();
    };
    const check = () => pc.iceGatheringState === "complete" && done();
    // Send what we have after a while: the server also learns peer-reflexive candidates.
    const timer = setTimeout(done, GATHER_TIMEOUT_MS);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

function connected(pc) {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (pc.connectionState === "connected") finish(resolve);
      else if (pc.connectionState === "failed" || pc.connectionState === "closed") {
        finish(() => reject(new ConnectionFailed(FAILED)));
      }
    };
    const finish = (fn) => {
      pc.removeEventListener("connectionstatechange", check);
      clearTimeout(timer);
      fn();
    };
    const timer = setTimeout(
      () => finish(() => reject(new ConnectionFailed(FAILED))),
      CONNECT_TIMEOUT_MS,
    );
    pc.addEventListener("connectionstatechange", check);
    check();
  });
}

/**
 * Report an established connection's changes: onState(state) for every connectionState after
 * "connected" (a "disconnected" may heal by itself), onLost() once when it fails or closes.
 */
function watch(pc, { onLost = () => {}, onState = () => {} }) {
  let reported = false;
  pc.addEventListener("connectionstatechange", () => {
    onState(pc.connectionState);
    if (reported || !["failed", "closed"].includes(pc.connectionState)) return;
    reported = true;
    onLost();
  });
}

async function negotiate(pc, url, extra) {
  await pc.setLocalDescription(await pc.createOffer());
  await gatheringComplete(pc);
  const answer = await api(url, {
    method: "POST",
    body: { ...extra, sdp: pc.localDescription.sdp, type: pc.localDescription.type },
  });
  await pc.setRemoteDescription(answer);
  await connected(pc);
}

/** Send `stream` (the microphone) for live session `sessionId`. Returns the open connection.
 * hooks: {onLost, onState} (see watch). */
export async function publish(stream, sessionId, hooks) {
  const pc = new RTCPeerConnection({ iceServers: await freshIceServers() });
  try {
    for (const track of stream.getAudioTracks()) pc.addTrack(track, stream);
    await negotiate(pc, "/api/webrtc/offer/", { session_id: sessionId });
  } catch (err) {
    pc.close();
    throw err;
  }
  watch(pc, hooks);
  return pc;
}

/**
 * Receive `username`'s live stream. The server offers (the app's own peer, or Janus when the
 * site uses it) and the page answers. Resolves to {pc, stream, leave} once audio flows;
 * `leave()` tells the server the listener is gone (closing `pc` alone also ends it, later).
 */
export async function subscribe(username, hooks) {
  const base = `/api/webrtc/listen/${encodeURIComponent(username)}/`;
  const pc = new RTCPeerConnection({ iceServers: await freshIceServers() });
  const received = new Promise((resolve) => {
    pc.addEventListener("track", (event) => resolve(event.streams[0] || new MediaStream([event.track])));
  });
  let listenerId = null;
  const leave = () => {
    if (listenerId) api(`${base}leave/`, { method: "POST", body: { listener_id: listenerId } }).catch(() => {});
    listenerId = null;
  };
  try {
    const offer = await api(base, { method: "POST", body: {} });
    listenerId = offer.listener_id;
    await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    await gatheringComplete(pc);
    await api(`${base}answer/`, {
      method: "POST",
      body: { listener_id: listenerId, type: "answer", sdp: pc.localDescription.sdp },
    });
    await connected(pc);
  } catch (err) {
    pc.close();
    leave();
    throw err;
  }
  watch(pc, hooks);
  return { pc, stream: await received, leave };
}
