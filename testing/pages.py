"""Driving the pages in a real Chromium: signed-in people, and the steps of the scenarios the
end-to-end tests (frontend/, fc25_denoise/) share."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, expect

from testing.browser import (
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
from testing.people import PASSWORD

SCREENSHOTS = ROOT / "docs" / "screenshots"
AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"  # `make` installs it (package.json)
# Run axe-core on the page as it is now; only what blocks or seriously hinders people counts.
AXE_RUN_JS = """
async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}
"""
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

    def accessibility_problems(self) -> list[str]:
        """axe-core's serious and critical violations on the page as it is now."""
        if not self.page.evaluate("() => typeof axe !== 'undefined'"):
            # Evaluated, not added as a <script>: the pages' CSP refuses inline scripts.
            self.page.evaluate(AXE_JS.read_text())
        return list(self.page.evaluate(AXE_RUN_JS))

    def assert_accessible(self, state: str) -> None:
        problems = self.accessibility_problems()
        assert problems == [], f"axe-core, {state}: {problems}"

    def close(self) -> None:
        self.context.close()


MakePerson = Callable[..., Person]


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


def start_streaming(alice: Person) -> None:
    """alice presses Go live and is live: the panel says so in words, the timer runs."""
    with alice.page.expect_response(lambda r: r.url.endswith("/api/stream/start/")) as started:
        alice.page.get_by_role("button", name=re.compile("^Go live")).click()
    assert started.value.status == 201
    expect(alice.page.locator("#on-air")).to_have_attribute("data-state", "live", timeout=20000)
    expect(alice.page.locator("#stream-chip")).to_have_text("Live")
    expect(alice.page.get_by_role("timer", name="Time live")).not_to_have_text("00:00", timeout=3000)


def stop_streaming(alice: Person) -> None:
    alice.page.get_by_role("button", name="Stop streaming").click()
    expect(alice.page.locator("#on-air")).to_have_attribute("data-state", "ended")
    expect(alice.page.get_by_role("button", name="Go live again")).to_be_enabled()


def go_live(alice: Person, bob: Person) -> None:
    """alice starts; bob's sidebar shows her LIVE within a second of the server accepting it."""
    with alice.page.expect_response(lambda r: r.url.endswith("/api/stream/start/")) as started:
        alice.page.get_by_role("button", name=re.compile("^Go live")).click()
    assert started.value.status == 201
    expect(bob.page.locator(f'{bob.friend_row("alice")}[data-live="true"]')).to_be_visible(timeout=1000)
    expect(alice.page.locator("#on-air")).to_have_attribute("data-state", "live", timeout=20000)
    alice.meter_above("#mic-meter", 25)  # the fake microphone really sends sound (16-bit PCM)
    expect(alice.page.get_by_role("timer", name="Time live")).not_to_have_text("00:00", timeout=3000)


def listen(alice: Person, bob: Person) -> None:
    bob.page.locator(f"{bob.friend_row('alice')} a").click()
    bob.page.wait_for_url("**/friend/alice/")
    expect(bob.page.locator("#live-badge")).to_be_visible()
    with bob.page.expect_response(lambda r: r.url.endswith("/api/ice-servers/")) as ice:
        bob.page.get_by_role("button", name="Listen", exact=True).click()
    assert ice.value.status == 200  # fresh ICE servers (TURN credentials) for each connection
    expect(bob.page.get_by_role("button", name="Stop listening")).to_be_visible(timeout=20000)
    bob.meter_above("#heard-meter", 10)
    expect(bob.page.locator("#denoise-indicator")).to_have_attribute("data-denoise", "on")
    expect(alice.page.locator("#listeners")).to_have_text("1", timeout=5000)


def stop_and_play_the_recording(alice: Person, bob: Person) -> None:
    """alice stops: bob's page says so, resets, and shows the new recording, which plays."""
    stop_streaming(alice)
    expect(bob.page.locator("#live-state")).to_contain_text("stream has ended")
    expect(bob.page.locator("#live-badge")).to_be_hidden()
    expect(bob.page.locator("#listen-panel")).to_be_hidden()  # nothing to press until she is back
    recording = bob.page.locator("li.recording[data-id]").first
    expect(recording).to_be_visible(timeout=20000)
    recording.get_by_role("button", name="Play").click()
    bob.page.wait_for_function(
        "() => document.querySelector('li.recording[data-id] audio').currentTime > 0.3", timeout=10000
    )
    recording.get_by_role("button", name="Pause").click()
    bob.page.wait_for_function("() => document.querySelector('li.recording canvas.wave').width > 300")


PRESET_WORDS = {"Light": "Light noise removal", "Off": "Off: you hear the microphone as it is"}


def choose_preset(alice: Person, bob: Person, preset: str) -> np.ndarray:
    """alice picks a noise preset while live; bob's page names it; what bob hears after it."""
    alice.page.get_by_role("radio", name=re.compile(f"^{preset}")).check()
    expect(bob.page.locator("#denoise-indicator")).to_have_text(PRESET_WORDS[preset])
    return capture_heard(bob)[25:]  # the first half second may still be the previous setting


def friend_listens_scenario(people: MakePerson, daphne_server: LiveServer, tmp_path: Path) -> None:
    """Two friends, one live stream: bob hears alice with each noise preset, then her recording.
    The README's screenshots are taken here, live and not live, desktop and 360 px."""
    alice, bob = people("alice"), people("bob")
    become_friends(alice, bob)
    go_live(alice, bob)
    listen(alice, bob)
    expect(bob.page.locator("#denoise-indicator")).to_have_text("Maximum noise removal")
    alice.assert_accessible("main page, live")
    bob.assert_accessible("friend page, listening")
    alice.page.screenshot(path=SCREENSHOTS / "main-live.png")
    bob.page.screenshot(path=SCREENSHOTS / "friend-live.png")

    heard_on = capture_heard(bob)
    heard_light = choose_preset(alice, bob, "Light")
    heard_off = choose_preset(alice, bob, "Off")
    server = {k: v for k, v in daphne_server.metrics().items() if "frames" in k or "packets" in k}
    for person, name in ((alice, "main-live"), (bob, "friend-live")):  # the narrowest phones
        person.page.set_viewport_size(PHONE)
        person.page.screenshot(path=SCREENSHOTS / f"{name}-360px.png")
        person.page.set_viewport_size(DESKTOP)

    stop_and_play_the_recording(alice, bob)
    alice.assert_accessible("main page, ended")
    bob.assert_accessible("friend page, not live, recordings")
    alice.page.screenshot(path=SCREENSHOTS / "main.png")
    bob.page.screenshot(path=SCREENSHOTS / "friend-page.png", full_page=True)
    for person, name in ((alice, "main"), (bob, "friend-page")):
        person.page.set_viewport_size(PHONE)
        person.page.screenshot(path=SCREENSHOTS / f"{name}-360px.png", full_page=True)

    np.save(tmp_path / "heard_on.npy", heard_on)  # kept for a look when an assertion fails
    np.save(tmp_path / "heard_off.npy", heard_off)
    microphone = make_microphone_wav(tmp_path / "mic.wav")
    input_floor = noise_floor_db(envelope_db(sf.read(microphone, dtype="float32")[0]))
    on_floor, off_floor = noise_floor_db(heard_on), noise_floor_db(heard_off)
    light_floor = noise_floor_db(heard_light)
    recording = bob.context.request.get("/api/recordings/alice/").json()[0]
    denoised = fetch_envelope(bob, recording["audio_url"])
    np.save(tmp_path / "recording.npy", denoised)
    follows = tracked_correlation(heard_on, denoised)
    control = tracked_correlation(heard_on, block_shuffled(denoised))
    print(
        f"noise floor dBFS: input {input_floor:.1f}, heard Maximum {on_floor:.1f}, Light {light_floor:.1f}, "
        f"Off {off_floor:.1f}\n"
        f"heard follows the recording {follows:.2f} (shuffled control {control:.2f})\n"
        f"listener gaps {dropout_fraction(heard_on):.1%} / {dropout_fraction(heard_off):.1%}; server {server}"
    )
    # bob hears much less noise than alice's microphone makes at Maximum, and clearly more at
    # Light (at most 6 dB removed) and Off. Light against Off is not asserted: 6 s captures of
    # different parts of the file differ by a few dB in their own noise floor.
    assert on_floor < input_floor - 8
    assert light_floor > on_floor + 5
    assert off_floor > on_floor + 5
    # what bob heard follows the server's denoised recording, half a second at a time; the
    # same measure against that recording's half-seconds shuffled shows it can tell
    assert follows > 0.8
    assert control < follows - 0.15

    assert alice.errors == []
    assert bob.errors == [], bob.errors
