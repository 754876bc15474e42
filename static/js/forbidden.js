// The "not friends" page: send a friend request from where the visitor already is.

import { api } from "./api.js";
import { $ } from "./ui.js";

function forbiddenPage() {
  const button = $("send-request");
  const message = $("request-message");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const result = await api("/api/friend-request/", { method: "POST", body: { username: button.dataset.username } });
      if (result && result.status === "accepted") {
        message.textContent = "You are friends now. Reloading…";
        location.reload();
        return;
      }
      message.textContent = `Friend request sent. You can listen once ${button.dataset.username} accepts it.`;
    } catch (err) {
      message.textContent = err.message;
      message.classList.add("error");
      button.disabled = false;
    }
  });
}

forbiddenPage();
