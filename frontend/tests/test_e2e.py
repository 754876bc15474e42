"""End to end in a real Chromium against a real Daphne: two friends, one live stream.

Runs inside scripts/netns-run like every WebRTC test. The microphone is Chromium's fake
capture device playing denoise/tests/data/noisy_snr0.wav (padded with silence, looped).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, expect

from frontend.tests.conftest import PASSWORD
from frontend.tests.e2e_support import (
    CAPTURE_ENVELOPE_JS,
    ROOT,
    LiveServer,
    block_shuffled,
    dropout_fraction,
    envelope_db,
    make_microphone_wav,
    noise_floor_db,
    rms_to_db,
    tracked_correlation,
)

pytestmark = [pytest.mark.e2e, pytest.mark.webrtc, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = ROOT / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 360, "height": 740}
CAPTURE_S = 6.0


class Person:
    """One signed-in browser context and its page, with the console errors it logged."""

    def __init__(
        self, browser: Browser, server: LiveServer, username: str, *, microphone: bool, presence: bool
    ) -> None:
        self.server = server
        self.context: BrowserContext = browser.new_context(
            viewport=DESKTOP, base_url=server.url, reduced_motion="reduce"
        )
        if microphone:
            self.context.grant_permissions(["microphone"], origin=server.url)
        if not presence:  # the presence socket is refused, as when the server's store is down
            self.context.route_web_socket("**/ws/presence/", lambda ws: ws.close(code=1011))
        self.errors: list[str] = []
        self.page: Page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.register(username)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} @ {message.location.get('url')}")

    def register(self, username: str) -> None:
        page = self.page
        page.goto("/accounts/register/")
        page.fill("#id_username", username)
        page.fill("#id_password1", PASSWORD)
        page.fill("#id_password2", PASSWORD)
        page.get_by_role("button", name="Create account").click()
        page.wait_for_url(f"{self.server.url}/")

    def friend_row(self, username: str) -> str:
        return f'#friend-list [data-username="{username}"]'

    def meter_above(self, selector: str, value: int, timeout_ms: float = 10000) -> None:
        self.page.wait_for_function(
            "([sel, v]) => Number(document.querySelector(sel).getAttribute('aria-valuenow')) > v",
            arg=[selector, value],
            timeout=timeout_ms,
        )

    def close(self) -> None:
        self.context.close()


MakePerson = Callable[..., Person]


@pytest.fixture
def people(browser: Browser, daphne_server: LiveServer) -> Iterator[MakePerson]:
    """people("alice") registers alice in a browser context of her own; closed afterwards."""
    made: list[Person] = []

    def make(username: str, *, microphone: bool = True, presence: bool = True) -> Person:
        made.append(Person(browser, daphne_server, username, microphone=microphone, presence=presence))
        return made[-1]

    yield make
    for person in made:
        person.close()


def become_friends(alice: Person, bob: Person) -> None:
    bob.page.fill("#search", "ali")
    bob.page.locator('#search-results [data-username="alice"] [data-role="add"]').click()
    expect(bob.page.locator('#outgoing-list [data-username="alice"]')).to_be_visible()
    # alice learns of the request through her presence socket, without reloading
    alice.page.get_by_role("button", name="Accept bob's friend request").first.click()
    expect(alice.page.locator(alice.friend_row("bob"))).to_be_visible()
    expect(bob.page.locator(bob.friend_row("alice"))).to_be_visible()
    expect(bob.page.locator('#search-results [data-username="alice"] [data-role="open"]')).to_have_text(
        "Friends"
    )


def fetch_envelope(person: Person, url: str) -> np.ndarray:
    samples, rate = sf.read(io.BytesIO(person.context.request.get(url).body()), dtype="float32")
    return envelope_db(samples, rate)


def capture_heard(bob: Person) -> np.ndarray:
    return rms_to_db(bob.page.evaluate(CAPTURE_ENVELOPE_JS, CAPTURE_S))


def go_live(alice: Person, bob: Person) -> None:
    """alice starts; bob's sidebar shows her LIVE within a second of the server accepting it."""
    with alice.page.expect_response(lambda r: r.url.endswith("/api/stream/start/")) as started:
        alice.page.get_by_role("button", name="Start streaming").click()
    assert started.value.status == 201
    expect(bob.page.locator(f'{bob.friend_row("alice")}[data-live="true"]')).to_be_visible(timeout=1000)
    expect(alice.page.locator("#my-live-badge")).to_be_visible(timeout=20000)
    alice.meter_above("#mic-meter", 25)  # the fake microphone really sends sound (16-bit PCM)
    expect(alice.page.locator("#timer")).not_to_have_text("00:00", timeout=3000)


def listen(alice: Person, bob: Person) -> None:
    bob.page.locator(f"{bob.friend_row('alice')} a").click()
    bob.page.wait_for_url("**/friend/alice/")
    expect(bob.page.locator("#live-badge")).to_be_visible()
    with bob.page.expect_response(lambda r: r.url.endswith("/api/ice-servers/")) as ice:
        bob.page.get_by_role("button", name="Start listening").click()
    assert ice.value.status == 200  # fresh ICE servers (TURN credentials) for each connection
    expect(bob.page.get_by_role("button", name="Stop listening")).to_be_visible(timeout=20000)
    bob.meter_above("#heard-meter", 10)
    expect(bob.page.locator("#denoise-indicator")).to_have_attribute("data-denoise", "on")
    expect(alice.page.locator("#listeners")).to_have_text("1", timeout=5000)


def stop_and_play_the_recording(alice: Person, bob: Person) -> None:
    """alice stops: bob's page says so, resets, and shows the new recording, which plays."""
    alice.page.get_by_role("button", name="Stop streaming").click()
    expect(alice.page.get_by_role("button", name="Start streaming")).to_be_enabled()
    expect(alice.page.locator("#my-live-badge")).to_be_hidden()
    expect(bob.page.locator("#live-state")).to_contain_text("stream has ended")
    expect(bob.page.locator("#live-badge")).to_be_hidden()
    expect(bob.page.get_by_role("button", name="Start listening")).to_be_disabled()
    recording = bob.page.locator("li.recording[data-id]").first
    expect(recording).to_be_visible(timeout=20000)
    recording.get_by_role("button", name="Play").click()
    bob.page.wait_for_function(
        "() => document.querySelector('li.recording[data-id] audio').currentTime > 0.3", timeout=10000
    )
    recording.get_by_role("button", name="Pause").click()
    bob.page.wait_for_function("() => document.querySelector('li.recording canvas.wave').width > 300")


def test_friend_listens_to_a_denoised_live_stream(
    people: MakePerson, daphne_server: LiveServer, tmp_path: Path
) -> None:
    alice, bob = people("alice"), people("bob")
    become_friends(alice, bob)
    go_live(alice, bob)
    listen(alice, bob)
    alice.page.screenshot(path=SCREENSHOTS / "main-live.png")

    heard_on = capture_heard(bob)
    alice.page.get_by_label("Remove background noise").uncheck()
    expect(bob.page.locator("#denoise-indicator")).to_have_attribute("data-denoise", "off")
    heard_off = capture_heard(bob)[25:]  # the first half second may still be denoised audio
    server = {k: v for k, v in daphne_server.metrics().items() if "frames" in k or "packets" in k}

    stop_and_play_the_recording(alice, bob)
    bob.page.screenshot(path=SCREENSHOTS / "friend-page.png", full_page=True)
    for person, name in ((alice, "main"), (bob, "friend-page")):  # the narrowest phones
        person.page.set_viewport_size(PHONE)
        person.page.screenshot(path=SCREENSHOTS / f"{name}-360px.png", full_page=True)

    np.save(tmp_path / "heard_on.npy", heard_on)  # kept for a look when an assertion fails
    np.save(tmp_path / "heard_off.npy", heard_off)
    microphone = make_microphone_wav(tmp_path / "mic.wav")
    input_floor = noise_floor_db(envelope_db(sf.read(microphone, dtype="float32")[0]))
    on_floor, off_floor = noise_floor_db(heard_on), noise_floor_db(heard_off)
    recording = bob.context.request.get("/api/recordings/alice/").json()[0]
    denoised = fetch_envelope(bob, recording["audio_url"])
    np.save(tmp_path / "recording.npy", denoised)
    follows = tracked_correlation(heard_on, denoised)
    control = tracked_correlation(heard_on, block_shuffled(denoised))
    print(
        f"noise floor dBFS: input {input_floor:.1f}, heard denoised {on_floor:.1f}, raw {off_floor:.1f}\n"
        f"heard follows the recording {follows:.2f} (shuffled control {control:.2f})\n"
        f"listener gaps {dropout_fraction(heard_on):.1%} / {dropout_fraction(heard_off):.1%}; server {server}"
    )
    # bob hears much less noise than alice's microphone makes, until she turns denoising off
    assert on_floor < input_floor - 8
    assert off_floor > on_floor + 5
    # what bob heard follows the server's denoised recording, half a second at a time; the
    # same measure against that recording's half-seconds shuffled shows it can tell
    assert follows > 0.8
    assert control < follows - 0.15

    assert alice.errors == []
    assert bob.errors == []


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
