// Browser notifications for "a friend went live", only with the user's permission and only
// while this tab is in the background (an open, visible page already shows it).

import { el } from "./ui.js";

export class LiveNotifier {
  /** @param {HTMLElement} slot  where the "Notify me" button goes */
  constructor(slot) {
    this.slot = slot;
    this.supported = "Notification" in window;
    this.render();
  }

  render() {
    if (!this.supported) {
      this.slot.replaceChildren();
      return;
    }
    const permission = Notification.permission;
    if (permission === "default") {
      this.slot.replaceChildren(el("button", { type: "button", class: "small-button", id: "notify-button",
        text: "Notify me when a friend goes live", onclick: () => this.ask() }));
    } else {
      this.slot.replaceChildren(el("p", { class: "muted small", text: permission === "granted"
        ? "You get a notification when a friend goes live while this tab is in the background."
        : "Notifications are blocked for this site; the page still shows who is live." }));
    }
  }

  async ask() {
    await Notification.requestPermission();
    this.render();
  }

  /** Show `text` as a notification if allowed and the page is not being looked at. */
  notify(text, url) {
    if (!this.supported || Notification.permission !== "granted" || document.visibilityState === "visible") return;
    const note = new Notification(text, { body: "Open the page to listen.", tag: url });
    note.addEventListener("click", () => {
      window.focus();
      location.assign(url);
    });
  }
}
