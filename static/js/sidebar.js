// The main page's left column: friends with live status, search, and friend requests.

import { api } from "./api.js";
import { MessageLine, debounce, el } from "./ui.js";

const SEARCH_DELAY_MS = 250;
const MESSAGE_MS = 8000;

function friendUrl(username) {
  return `/friend/${encodeURIComponent(username)}/`;
}

function statusWords(friend) {
  if (friend.is_streaming) return "live now";
  return friend.is_online ? "online" : "offline";
}

function byLiveThenName(a, b) {
  const rank = (f) => (f.is_streaming ? 0 : f.is_online ? 1 : 2);
  return rank(a) - rank(b) || a.username.localeCompare(b.username);
}

export class Sidebar {
  /** @param {{announce: (text: string) => void, notify: (text: string, url: string) => void}} hooks */
  constructor({ announce, notify }) {
    this.announce = announce;
    this.notify = notify;
    this.friends = new Map();
    this.incoming = [];
    this.outgoing = [];
    this.nodes = {
      friends: document.getElementById("friend-list"),
      friendsEmpty: document.getElementById("friends-empty"),
      friendsCount: document.getElementById("friends-count"),
      incoming: document.getElementById("incoming-list"),
      incomingEmpty: document.getElementById("incoming-empty"),
      outgoing: document.getElementById("outgoing-list"),
      outgoingEmpty: document.getElementById("outgoing-empty"),
      search: document.getElementById("search"),
      searchStatus: document.getElementById("search-status"),
      results: document.getElementById("search-results"),
      message: document.getElementById("sidebar-message"),
    };
    this.searchAbort = null;
    this.message = new MessageLine(this.nodes.message, { fadeMs: MESSAGE_MS });
    const runSearch = debounce(() => this.search(), SEARCH_DELAY_MS);
    this.nodes.search.addEventListener("input", runSearch);
  }

  // ----- state from the server -----

  /** The socket's first message / the poll: {friends, requests: {incoming, outgoing}}. */
  applySnapshot({ friends = [], requests = {} }) {
    this.friends = new Map(friends.map((f) => [f.username, { ...f }]));
    this.incoming = requests.incoming || [];
    this.outgoing = requests.outgoing || [];
    this.render();
  }

  /** Presence events; returns true if the event was about the friend graph. */
  applyEvent(msg) {
    const friend = msg.username ? this.friends.get(msg.username) : undefined;
    switch (msg.type) {
      case "presence":
        if (friend) Object.assign(friend, { is_online: Boolean(msg.is_online) });
        break;
      case "streaming_status":
        if (!friend) break;
        if (msg.is_streaming && !friend.is_streaming) {
          this.announce(`${msg.username} is live now.`);
          this.notify(`${msg.username} is live now`, friendUrl(msg.username));
        }
        if (!msg.is_streaming && friend.is_streaming) this.announce(`${msg.username} stopped streaming.`);
        Object.assign(friend, { is_streaming: Boolean(msg.is_streaming), started_at: msg.started_at });
        if (msg.is_streaming) friend.is_online = true;
        break;
      case "friend_request":
      case "friend_request_update":
      case "friend_added":
      case "friend_removed":
        this.refresh();
        return true;
      default:
        return false;
    }
    this.renderFriends();
    return false;
  }

  async refresh() {
    try {
      const [friends, requests] = await Promise.all([api("/api/friends/"), api("/api/friend-requests/")]);
      const previous = this.friends;
      this.applySnapshot({
        friends: friends.map((f) => ({ ...previous.get(f.username), ...f })),
        requests,
      });
      if (this.nodes.search.value.trim()) this.search();
    } catch (err) {
      this.setMessage(err.message, true);
    }
  }

  setMessage(text, isError = false) {
    this.message.show(text, { error: isError });
  }

  // ----- rendering -----

  render() {
    this.renderFriends();
    this.renderRequests();
  }

  /** Re-render a list, keeping keyboard focus on the same person if it was inside. */
  replaceKeepingFocus(list, items) {
    const focused = list.contains(document.activeElement) ? document.activeElement : null;
    const key = focused && focused.closest("[data-username]")?.dataset.username;
    const role = focused && focused.dataset.role;
    list.replaceChildren(...items);
    if (key) {
      const row = list.querySelector(`[data-username="${CSS.escape(key)}"]`);
      const target = row && (row.querySelector(`[data-role="${role}"]`) || row.querySelector("a, button"));
      if (target) target.focus();
    }
  }

  renderFriends() {
    const friends = [...this.friends.values()].sort(byLiveThenName);
    const items = friends.map((f) =>
      el(
        "li",
        { class: "person", "data-username": f.username, "data-live": f.is_streaming ? "true" : "false" },
        el(
          "a",
          { href: friendUrl(f.username), class: "person-link", "data-role": "open" },
          el("span", { class: `dot ${f.is_streaming ? "dot-live" : f.is_online ? "dot-online" : ""}`, "aria-hidden": "true" }),
          el("span", { class: "name", text: f.username }),
          el("span", { class: "visually-hidden", text: ", " }),
          f.is_streaming
            ? el("span", { class: "badge badge-live", text: "LIVE" })
            : el("span", { class: "state muted small", text: statusWords(f) }),
        ),
      ),
    );
    this.replaceKeepingFocus(this.nodes.friends, items);
    this.nodes.friendsEmpty.hidden = friends.length > 0;
    this.nodes.friendsCount.textContent = friends.length ? `(${friends.length})` : "";
  }

  renderRequests() {
    const incoming = this.incoming.map((r) =>
      el(
        "li",
        { class: "person", "data-username": r.username },
        el("span", { class: "name", text: r.username }),
        el("span", { class: "actions" },
          this.button("Accept", `Accept ${r.username}'s friend request`, "accept", () => this.decide(r, "accept"), "primary"),
          this.button("Reject", `Reject ${r.username}'s friend request`, "reject", () => this.decide(r, "reject")),
        ),
      ),
    );
    const outgoing = this.outgoing.map((r) =>
      el(
        "li",
        { class: "person", "data-username": r.username },
        el("span", { class: "name", text: r.username }),
        el("span", { class: "muted small", text: "waiting" }),
        el("span", { class: "actions" },
          this.button("Cancel", `Cancel your friend request to ${r.username}`, "cancel", () => this.decide(r, "cancel")),
        ),
      ),
    );
    this.replaceKeepingFocus(this.nodes.incoming, incoming);
    this.replaceKeepingFocus(this.nodes.outgoing, outgoing);
    this.nodes.incomingEmpty.hidden = incoming.length > 0;
    this.nodes.outgoingEmpty.hidden = outgoing.length > 0;
  }

  button(text, label, role, onclick, extraClass = "") {
    return el("button", { type: "button", class: `small-button ${extraClass}`, "aria-label": label, "data-role": role, onclick, text });
  }

  // ----- search -----

  setSearchStatus(text) {
    this.nodes.searchStatus.textContent = text;
  }

  async search() {
    const q = this.nodes.search.value.trim();
    if (this.searchAbort) this.searchAbort.abort();
    if (!q) {
      this.nodes.results.replaceChildren();
      this.setSearchStatus("");
      return;
    }
    this.searchAbort = new AbortController();
    let people;
    try {
      people = await api(`/api/search/?q=${encodeURIComponent(q)}`, { signal: this.searchAbort.signal });
    } catch (err) {
      if (err.name !== "AbortError") this.setSearchStatus(err.message);
      return;
    }
    this.replaceKeepingFocus(this.nodes.results, people.map((p) => this.resultItem(p)));
    this.setSearchStatus(people.length ? `${people.length} found.` : `No one is called "${q}". Check the spelling.`);
  }

  resultItem(person) {
    const name = person.username;
    let action;
    switch (person.relation) {
      case "friend":
        action = el("a", { href: friendUrl(name), class: "small-button", "data-role": "open", text: "Friends",
          "aria-label": `Friends: open ${name}'s page` });
        break;
      case "request_sent":
        action = el("button", { type: "button", class: "small-button", "aria-disabled": "true", "data-role": "requested",
          text: "Requested", "aria-label": `Requested: friend request to ${name} sent` });
        break;
      case "request_received":
        action = this.button("Accept", `Accept ${name}'s friend request`, "accept", () => this.acceptFrom(name), "primary");
        break;
      default:
        action = this.button("Add", `Add ${name} as a friend`, "add", () => this.add(name), "primary");
    }
    return el("li", { class: "person", "data-username": name }, el("span", { class: "name", text: name }), action);
  }

  // ----- actions -----

  /** Run an action; `work` resolves to the sentence that reports its success. */
  async run(work) {
    try {
      this.setMessage(await work());
    } catch (err) {
      this.setMessage(err.message, true);
    }
    await this.refresh();
  }

  add(username) {
    return this.run(async () => {
      const result = await api("/api/friend-request/", { method: "POST", body: { username } });
      return result && result.status === "accepted"
        ? `${username} had already asked you: you are now friends.`
        : `Friend request sent to ${username}.`;
    });
  }

  decide(request, verb) {
    const words = { accept: `You and ${request.username} are now friends.`, reject: `Request from ${request.username} rejected.`,
      cancel: `Request to ${request.username} cancelled.` };
    return this.run(async () => {
      await api(`/api/friend-request/${request.id}/${verb}/`, { method: "POST" });
      return words[verb];
    });
  }

  async acceptFrom(username) {
    const request = this.incoming.find((r) => r.username === username);
    if (request) return this.decide(request, "accept");
    return this.add(username); // sending to someone who asked us accepts their request
  }
}
