// Main page: the on-air panel and the sidebar (friends, search, requests), kept live by the
// presence socket (or by polling /api/presence/ while the socket is down). Everything the page
// holds lives in the objects made here; modules keep no state of their own.

import { ServerClock, api } from "./api.js";
import { Broadcaster } from "./broadcast.js";
import { SelfMonitor } from "./microphone.js";
import { NoisePanel } from "./noise_panel.js";
import { LiveNotifier } from "./notify.js";
import { LiveSocket } from "./presence.js";
import { Sidebar } from "./sidebar.js";
import { $, Announcer } from "./ui.js";

function mainPage() {
  const me = JSON.parse($("me").textContent);
  const statusUrl = `/api/stream/status/${encodeURIComponent(me)}/`;
  const announcer = new Announcer($("announcer"));
  const announce = (text) => announcer.say(text);
  const clock = new ServerClock();
  const notifier = new LiveNotifier($("notify-slot"));
  const sidebar = new Sidebar({ announce, notify: (text, url) => notifier.notify(text, url) });
  const panel = { noise: null };
  const broadcaster = new Broadcaster({ announce, clock, settings: () => panel.noise.settings() });
  panel.noise = new NoisePanel({
    initial: JSON.parse($("noise-preference").textContent),
    apply: (change) => broadcaster.pushSettings(change),
    announce,
    onError: (text) => sidebar.setMessage(text, true),
  });
  new SelfMonitor($("monitor"), $("monitor-audio"), (text) => broadcaster.message.show(text, { error: true }));

  const checkMyStream = () =>
    api(statusUrl, { clock }).then((status) => broadcaster.serverStatus(status), () => {});

  const onMessage = (msg) => {
    switch (msg.type) {
      case "snapshot":
        sidebar.applySnapshot(msg);
        break;
      case "listeners":
        if (msg.username === undefined || msg.username === me) broadcaster.setListeners(msg.count, msg.names);
        break;
      case "streaming_status":
        // News about my own stream (another tab, or the server ending it) goes to the panel.
        if (msg.username === me) broadcaster.serverStatus(msg);
        else sidebar.applyEvent(msg);
        break;
      case "recording": // my stream goes on, its recording stopped (a full disk)
        if (msg.username === me) broadcaster.message.show(msg.message, { error: true });
        break;
      case "friend_request":
        announce(`${msg.username} sent you a friend request.`);
        sidebar.applyEvent(msg);
        break;
      default:
        sidebar.applyEvent(msg);
    }
  };

  const connectionStatus = $("connection-status");
  const opens = { count: 0 };
  const socket = new LiveSocket("/ws/presence/", {
    onMessage,
    pollUrl: "/api/presence/",
    onPoll: (data) => {
      sidebar.applySnapshot(data);
      checkMyStream();
    },
    onStatus: (up) => {
      connectionStatus.textContent = up ? "" : "Live updates paused; checking every 5 seconds while reconnecting.";
      if (up && opens.count++ > 0) checkMyStream(); // news missed while the socket was down
    },
    onFinalClose: () => {
      connectionStatus.textContent = "You have been signed out. Reload the page to sign in again.";
    },
  });
  broadcaster.setState(broadcaster.state);
  // Am I live already (from another tab, or from this tab before a reload)?
  api(statusUrl, { clock }).then(
    (status) => broadcaster.resume(status),
    (err) => broadcaster.message.show(err.message, { error: true }),
  );
  socket.start();
}

mainPage();
