"""End to end in a real Chromium against a real Daphne: two friends, one live stream.

Runs inside scripts/netns-run like every WebRTC test. The microphone is Chromium's fake
capture device playing denoise/tests/data/noisy_snr0.wav (padded with silence, looped).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from testing.browser import (
    LiveServer,
)
from testing.pages import (
    MakePerson,
    friend_listens_scenario,
)

pytestmark = [pytest.mark.e2e, pytest.mark.webrtc, pytest.mark.django_db(transaction=True)]


def test_friend_listens_to_a_denoised_live_stream(
    people: MakePerson, daphne_server: LiveServer, tmp_path: Path
) -> None:
    friend_listens_scenario(people, daphne_server, tmp_path)


def test_no_socket_no_microphone_strangers_and_leaving_while_live(
    people: MakePerson, daphne_server: LiveServer
) -> None:
    carol = people("carol", microphone=False, presence=False)
    page = carol.page
    expect(page.locator("#connection-status")).to_contain_text("Live updates paused")

    # with its socket down the page polls /api/presence/, so a new request still shows up
    dave = people("dave")
    dave.page.fill("#search", "carol")
    dave.page.locator('#search-results [data-username="carol"] [data-role="add"]').click()
    expect(page.get_by_role("button", name="Accept dave's friend request")).to_be_visible(timeout=8000)

    # the microphone is refused: a message in plain words, the button usable, nothing live
    page.get_by_role("button", name="Start streaming").click()
    expect(page.get_by_role("alert")).to_contain_text("Microphone access was blocked")
    expect(page.get_by_role("button", name="Start streaming")).to_be_enabled()
    expect(page.locator("#my-live-badge")).to_be_hidden()
    assert carol.context.request.get("/api/stream/status/carol/").json()["is_streaming"] is False

    response = page.goto("/friend/dave/")
    assert response is not None
    assert response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("You and dave are not friends")
    expect(page.get_by_text("dave has sent you a friend request.")).to_be_visible()

    response = page.goto("/friend/nobody-here/")
    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_contain_text("There is no user called")

    # leaving the page while live asks first, then stops the stream with a beacon
    dave.page.get_by_role("button", name="Start streaming").click()
    expect(dave.page.locator("#my-live-badge")).to_be_visible(timeout=20000)
    stop_served = '"POST /api/stream/stop/" 200'
    stops_before = daphne_server.access_log_count(stop_served)
    asked: list[str] = []
    dave.page.once("dialog", lambda dialog: (asked.append(dialog.type), dialog.accept()))
    dave.page.get_by_role("link", name="Your recordings").click()
    dave.page.wait_for_url("**/friend/dave/")
    assert asked == ["beforeunload"]
    # the server accepted the beacon (CSRF token in the form) whether or not it still found
    # the stream: noticing the peer leave may have ended it first
    daphne_server.wait_for_access(stop_served, stops_before + 1)
    over = re.compile("not live right now|stream has ended")
    expect(dave.page.locator("#live-state")).to_contain_text(over)
    expect(dave.page.locator("#live-badge")).to_be_hidden()
    assert dave.context.request.get("/api/stream/status/dave/").json()["is_streaming"] is False
