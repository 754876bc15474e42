// Main page: the sidebar (friends, search, requests) and the streaming panel, kept live by
// the presence socket (or by polling /api/presence/ while the socket is down).

import { Broadcaster } from "./broadcast.js";
import { LiveSocket } from "./presence.js";
import { Sidebar } from "./sidebar.js";

const me = JSON.parse(document.getElementById("me").textContent);
const announcer = document.getElementById("announcer");
const connectionStatus = document.getElementById("connection-status");

function announce(text) {
  // Clearing first makes screen readers repeat an identical sentence.
  announcer.textContent = "";
  setTimeout(() => (announcer.textContent = text), 50);
}

const sidebar = new Sidebar({ announce });
const broadcaster = new Broadcaster({ announce });

function onMessage(msg) {
  switch (msg.type) {
    case "snapshot":
      sidebar.applySnapshot(msg);
      break;
    case "listeners":
      if (msg.username === undefined || msg.username === me) broadcaster.setListeners(msg.count);
      break;
    case "streaming_status":
      // News about my own stream (another tab, or the server ending it) goes to the panel.
      if (msg.username === me) broadcaster.serverStatus(msg);
      else sidebar.applyEvent(msg);
      break;
    case "friend_request":
      announce(`${msg.username} sent you a friend request.`);
      sidebar.applyEvent(msg);
      break;
    default:
      sidebar.applyEvent(msg);
  }
}

const socket = new LiveSocket("/ws/presence/", {
  onMessage,
  pollUrl: "/api/presence/",
  onPoll: (data) => sidebar.applySnapshot(data),
  onStatus: (up) => {
    connectionStatus.textContent = up ? "" : "Live updates paused; checking every 5 seconds while reconnecting.";
  },
  onFinalClose: () => {
    connectionStatus.textContent = "You have been signed out. Reload the page to sign in again.";
  },
});
socket.start();
broadcaster.render();
