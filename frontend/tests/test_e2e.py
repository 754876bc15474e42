"""End to end in a real Chromium against a real Daphne: the pages as people use them.

Runs inside scripts/netns-run like every WebRTC test. The microphone is Chromium's fake
capture device playing denoise/tests/data/noisy_snr0.wav (padded with silence, looped).
Every page state visited is checked with axe-core (no serious or critical violation).
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from testing.browser import LiveServer
from testing.pages import (
    PHONE,
    MakePerson,
    Person,
    become_friends,
    friend_listens_scenario,
    go_live,
    listen,
    start_streaming,
    stop_streaming,
)

pytestmark = [pytest.mark.e2e, pytest.mark.webrtc, pytest.mark.django_db(transaction=True)]


def test_friend_listens_to_a_denoised_live_stream(
    people: MakePerson, daphne_server: LiveServer, tmp_path: Path
) -> None:
    friend_listens_scenario(people, daphne_server, tmp_path)


def box_bottom(page: Page, selector: str) -> float:
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not displayed"
    return box["y"] + box["height"]


def test_pages_when_nobody_is_live(people: MakePerson) -> None:
    """The defects a walk found on pages with nobody live, each asserted as the user meets it."""
    alice, bob = people("alice"), people("bob")
    become_friends(alice, bob)
    page = bob.page
    alice.assert_accessible("main page, not live, with a friend")

    # the page's own heading comes first, then the sidebar's; the time live has a name
    assert page.evaluate("() => document.querySelector('h1, h2').tagName") == "H1"
    expect(page.get_by_role("timer", name="Time live")).to_have_text("00:00")
    expect(page.locator("#stream-chip")).to_have_text("Not live")

    # presets in plain words; strength 0 says it removes nothing
    page.get_by_role("radio", name=re.compile("^Strong")).check()
    page.get_by_text("Advanced: exact strength").click()
    page.get_by_label("Strength").fill("0")
    expect(page.locator("#strength-value")).to_have_text("0 dB: nothing removed")
    expect(page.get_by_role("radio", name=re.compile("^Strong"))).not_to_be_checked()
    assert page.evaluate("() => import('/static/js/noise.js').then((m) => m.describe(true, 0))") == (
        "Off: you hear the microphone as it is"
    )
    # the choice is kept for the account (another device sees it)
    page.get_by_role("radio", name=re.compile("^Light")).check()
    bob.page.wait_for_function(
        "() => fetch('/api/me/noise/').then((r) => r.json()).then((n) => n.atten_lim_db === 6 && n.denoise)"
    )
    page.reload()
    expect(page.get_by_role("radio", name=re.compile("^Light"))).to_be_checked()

    # a confirmation appearing (and going) does not move the sidebar
    carol = people("carol")
    sidebar_top = page.locator("#friends-heading").bounding_box()
    page.fill("#search", "carol")
    page.locator('#search-results [data-username="carol"] [data-role="add"]').click()
    expect(page.locator("#sidebar-message")).to_contain_text("Friend request sent to carol")
    assert page.locator("#friends-heading").bounding_box() == sidebar_top
    bob.assert_accessible("main page, confirmation shown")
    carol.close()

    # the friend page of someone not live: no red "Off", no dead controls, says so in words
    page.locator(f"{bob.friend_row('alice')} a").click()
    page.wait_for_url("**/friend/alice/")
    expect(page.locator("#live-state")).to_contain_text("alice is not live right now")
    expect(page.locator("#listen-panel")).to_be_hidden()
    expect(page.get_by_text("unprocessed")).to_have_count(0)
    expect(page.get_by_text("Off: you hear")).to_have_count(0)
    bob.assert_accessible("friend page, not live, no recordings")

    # on a 360 x 740 phone: Go live on the first screen; the friend page's recordings too
    page.set_viewport_size(PHONE)
    assert box_bottom(page, "#recordings-heading") < PHONE["height"]
    page.goto("/")
    assert box_bottom(page, "#stream-toggle") < PHONE["height"]
    bob.assert_accessible("main page, 360 px")

    # your own recordings page speaks to you
    page.goto("/friend/bob/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your recordings")
    expect(page.locator("#live-state")).to_have_text("You are not live.")
    expect(page.locator("#recordings-empty")).to_contain_text("Every time you go live")
    expect(page.get_by_text(re.compile("they go live|bob is not live"))).to_have_count(0)
    bob.assert_accessible("own page, no recordings")


def test_a_field_with_an_error_is_marked(people: MakePerson, daphne_server: LiveServer) -> None:
    person = people("erin")
    page = person.page
    page.context.clear_cookies()
    page.goto("/accounts/login/")
    page.fill("#id_username", "erin")
    page.fill("#id_password", "wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".errorlist")).to_be_visible()
    page.goto("/accounts/register/")
    page.fill("#id_username", "erin")
    page.fill("#id_password1", "short")
    page.fill("#id_password2", "other")
    page.get_by_role("button", name="Create account").click()
    field = page.locator("#id_username")
    expect(field).to_have_attribute("aria-invalid", "true")
    assert field.evaluate("(f) => getComputedStyle(f).borderTopColor") == "rgb(198, 40, 40)"
    assert field.evaluate("(f) => getComputedStyle(f).borderTopWidth") == "2px"
    person.assert_accessible("register page with errors")


def record(alice: Person, seconds: float) -> None:
    start_streaming(alice)
    if seconds:
        expect(alice.page.get_by_role("timer", name="Time live")).to_have_text(
            f"00:0{int(seconds)}", timeout=10000
        )
    stop_streaming(alice)


def test_owner_renames_deletes_and_hides_short_recordings(people: MakePerson) -> None:
    alice = people("alice")
    record(alice, 4)  # a real one
    record(alice, 0)  # an accidental second
    page = alice.page
    page.get_by_role("link", name="Your recordings").click()
    page.wait_for_url("**/friend/alice/")
    rows = page.locator("li.recording[data-id]")
    expect(rows).to_have_count(1)  # the short one is hidden...
    expect(page.locator("#live-state")).to_contain_text("Last live just now")
    show_short = page.get_by_role("switch", name=re.compile("Show 1 short recording"))
    show_short.check()  # ...and shown on demand
    expect(rows).to_have_count(2)
    alice.assert_accessible("own recordings, short ones shown")

    # each download says its own size, about half of both files together
    listing = page.context.request.get("/api/recordings/alice/").json()
    long_one = max(listing, key=lambda r: r["duration_s"])
    assert 0 < long_one["audio_bytes"] < long_one["size_bytes"]
    row = page.locator(f'li.recording[data-id="{long_one["id"]}"]')
    expect(row.locator("a", has_text="Download")).to_contain_text(f"{long_one['audio_bytes'] / 1024:.0f} KB")

    # rename: a title instead of the date, kept by the server
    row.get_by_role("button", name=re.compile("^Rename")).click()
    page.get_by_label("Title").fill("Band practice")
    page.get_by_role("button", name="Save").click()
    expect(row.locator(".rec-title")).to_have_text("Band practice")
    expect(row.get_by_role("button", name="Rename recording “Band practice”")).to_be_focused()

    # the waveform follows the version being played
    row.locator(".wave").scroll_into_view_if_needed()
    expect(row).to_have_attribute("data-wave", "audio")
    if listing[0]["raw_url"]:
        row.get_by_role("switch", name="Original (before noise removal)").check()
        expect(row).to_have_attribute("data-wave", "raw")

    # delete, after a confirmation; "Keep it" keeps it
    short_row = page.locator("li.recording[data-id]").filter(has_not_text="Band practice")
    short_row.get_by_role("button", name=re.compile("^Delete")).click()
    alice.assert_accessible("delete confirmation")
    page.get_by_role("button", name="Keep it").click()
    expect(rows).to_have_count(2)
    short_row.get_by_role("button", name=re.compile("^Delete")).click()
    page.get_by_role("button", name="Delete for good").click()
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".rec-title")).to_have_text("Band practice")
    assert len(page.context.request.get("/api/recordings/alice/").json()) == 1
    assert alice.errors == []


def test_second_tab_and_leaving_while_live(people: MakePerson, daphne_server: LiveServer) -> None:
    dave = people("dave")
    start_streaming(dave)
    # a second tab of the same user knows at once, and offers to stop it there
    other = dave.context.new_page()
    other.goto("/")
    expect(other.locator("#stream-chip")).to_have_text("Live in another tab")
    expect(other.get_by_role("timer", name="Time live")).not_to_have_text("00:00")
    other.get_by_role("button", name="Stop it here").click()
    expect(other.locator("#on-air")).to_have_attribute("data-state", "idle")
    expect(dave.page.locator("#on-air")).to_have_attribute("data-state", "ended")
    expect(dave.page.locator("#stream-message")).to_contain_text("ended elsewhere")
    other.close()

    # leaving the page while live asks first
    start_streaming(dave)
    asked: list[str] = []
    dave.page.once("dialog", lambda dialog: (asked.append(dialog.type), dialog.accept()))
    dave.page.get_by_role("link", name="Your recordings").click()
    dave.page.wait_for_url("**/friend/dave/")
    assert asked == ["beforeunload"]
    expect(dave.page.locator("#live-state")).to_contain_text(
        re.compile("You are not live|stream has ended"), timeout=20000
    )
    assert dave.context.request.get("/api/stream/status/dave/").json()["is_streaming"] is False


def test_no_socket_no_microphone_and_strangers(people: MakePerson) -> None:
    carol = people("carol", microphone=False, presence=False)
    page = carol.page
    expect(page.locator("#connection-status")).to_contain_text("Live updates paused")

    # with its socket down the page polls /api/presence/, so a new request still shows up
    dave = people("dave")
    dave.page.fill("#search", "carol")
    dave.page.locator('#search-results [data-username="carol"] [data-role="add"]').click()
    expect(page.get_by_role("button", name="Accept dave's friend request")).to_be_visible(timeout=8000)

    # the microphone is refused: a message in plain words, the button usable, nothing live
    page.get_by_role("button", name="Go live").click()
    expect(page.get_by_role("alert")).to_contain_text("Microphone access was blocked")
    expect(page.get_by_role("button", name="Go live")).to_be_enabled()
    expect(page.locator("#on-air")).to_have_attribute("data-state", "idle")
    carol.assert_accessible("main page, microphone refused")
    assert carol.context.request.get("/api/stream/status/carol/").json()["is_streaming"] is False

    response = page.goto("/friend/dave/")
    assert response is not None
    assert response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("You and dave are not friends")
    expect(page.get_by_text("dave has sent you a friend request.")).to_be_visible()
    carol.assert_accessible("not friends page")

    response = page.goto("/friend/nobody-here/")
    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_contain_text("There is no user called")
    carol.assert_accessible("no such user page")


@contextmanager
def server_frozen(server: LiveServer) -> Iterator[None]:
    """The server stops answering anything (SIGSTOP) until the block exits: to the pages, the
    network or the server is gone."""
    assert server.proc is not None
    server.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        server.proc.send_signal(signal.SIGCONT)


def test_a_network_drop_shows_reconnecting_and_the_stream_goes_on(
    people: MakePerson, daphne_server: LiveServer
) -> None:
    """The server goes silent for a few seconds (less than its 10 s media timeout): each page
    says "Reconnecting…", then both carry on with the same stream and the same recording."""
    alice, bob = people("alice"), people("bob")
    become_friends(alice, bob)
    go_live(alice, bob)
    listen(alice, bob)
    with server_frozen(daphne_server):
        expect(alice.page.locator("#on-air")).to_have_attribute("data-state", "reconnecting", timeout=9000)
        expect(alice.page.locator("#stream-chip")).to_have_text("Reconnecting…")
        expect(bob.page.locator("#friend-live")).to_have_attribute(
            "data-listen", "reconnecting", timeout=9000
        )
        expect(bob.page.locator("#listen-state")).to_contain_text("Reconnecting")
        alice.assert_accessible("main page, reconnecting")
    expect(alice.page.locator("#on-air")).to_have_attribute("data-state", "live", timeout=15000)
    expect(bob.page.locator("#friend-live")).to_have_attribute("data-listen", "listening", timeout=20000)
    bob.meter_above("#heard-meter", 10)
    expect(alice.page.locator("#stream-message")).to_be_empty()
    assert len(alice.context.request.get("/api/recordings/alice/").json()) == 1  # the same stream
    stop_streaming(alice)
    assert alice.errors == []
    assert bob.errors == []
