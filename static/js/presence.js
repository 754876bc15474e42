// A WebSocket that reconnects with backoff and, while it is down, polls a JSON URL instead.

const PING_MS = 25000;
const MIN_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 30000;
// The server closes with these when retrying cannot help: signed out, not a friend, no such user.
const FINAL_CLOSE_CODES = [4401, 4403, 4404];

function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

export class LiveSocket {
  /**
   * @param {string} path         e.g. "/ws/presence/"
   * @param {object} options
   * @param {(msg: object) => void} options.onMessage   every message from the socket
   * @param {string} [options.pollUrl]                   JSON URL polled while the socket is down
   * @param {(data: object) => void} [options.onPoll]     fresh data from the poll (not called on 304)
   * @param {(connected: boolean) => void} [options.onStatus]
   * @param {(code: number) => void} [options.onFinalClose]  the server refused us for good
   * @param {number} [options.pollMs]
   */
  constructor(path, { onMessage, pollUrl, onPoll, onStatus, onFinalClose, pollMs = 5000 }) {
    this.url = socketUrl(path);
    this.onMessage = onMessage;
    this.pollUrl = pollUrl;
    this.onPoll = onPoll;
    this.onStatus = onStatus || (() => {});
    this.onFinalClose = onFinalClose || (() => {});
    this.pollMs = pollMs;
    this.backoff = MIN_BACKOFF_MS;
    this.ws = null;
    this.closed = false;
    this.etag = "";
    this.timers = { reconnect: 0, ping: 0, poll: 0 };
    this.wake = () => this.reconnectNow();
  }

  start() {
    this.closed = false;
    window.addEventListener("online", this.wake);
    this.connect();
  }

  close() {
    this.closed = true;
    window.removeEventListener("online", this.wake);
    Object.values(this.timers).forEach((t) => clearTimeout(t));
    clearInterval(this.timers.ping);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  get connected() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN);
  }

  connect() {
    if (this.closed) return;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.backoff = MIN_BACKOFF_MS;
      this.stopPolling();
      clearInterval(this.timers.ping);
      this.timers.ping = setInterval(() => this.send({ type: "ping" }), PING_MS);
      this.onStatus(true);
    });
    ws.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return; // the server only sends JSON; ignore anything else
      }
      this.onMessage(message);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      clearInterval(this.timers.ping);
      this.ws = null;
      if (this.closed) return;
      if (FINAL_CLOSE_CODES.includes(event.code)) {
        this.close();
        this.onFinalClose(event.code);
        return;
      }
      this.onStatus(false);
      this.startPolling();
      this.scheduleReconnect();
    });
    // "error" is always followed by "close"; nothing to do here.
  }

  scheduleReconnect() {
    clearTimeout(this.timers.reconnect);
    const jitter = 0.8 + Math.random() * 0.4;
    this.timers.reconnect = setTimeout(() => this.connect(), this.backoff * jitter);
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
  }

  reconnectNow() {
    if (this.closed || this.connected) return;
    clearTimeout(this.timers.reconnect);
    this.backoff = MIN_BACKOFF_MS;
    this.connect();
  }

  startPolling() {
    if (!this.pollUrl || this.timers.poll) return;
    const tick = async () => {
      await this.pollOnce();
      if (!this.closed && !this.connected) this.timers.poll = setTimeout(tick, this.pollMs);
    };
    this.timers.poll = setTimeout(tick, 0);
  }

  stopPolling() {
    clearTimeout(this.timers.poll);
    this.timers.poll = 0;
  }

  async pollOnce() {
    const headers = { Accept: "application/json" };
    if (this.etag) headers["If-None-Match"] = this.etag;
    let response;
    try {
      response = await fetch(this.pollUrl, { headers, credentials: "same-origin" });
    } catch {
      return; // offline: the next tick tries again
    }
    if (response.status === 304 || !response.ok) return;
    this.etag = response.headers.get("ETag") || "";
    try {
      this.onPoll(await response.json());
    } catch {
      // a malformed body is skipped; the next poll replaces it
    }
  }
}
