"""TURN in the browser: a listener whose Chromium may use relay candidates only hears alice's
denoised stream through coturn (shipped template, test secret, see test_turn.py for coturn alone).

The app runs with TURN_SECRET/TURN_URLS pointing at that coturn, so the pages fetch short-lived
credentials from /api/ice-servers/ before each connection. Bob's pages get
`iceTransportPolicy: "relay"` forced on every RTCPeerConnection: without a relay opened with the
credentials the server issued him, he hears nothing. Runs inside scripts/netns-run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from fc25_denoise.ice import turn_password
from testing.browser import (
    LiveServer,
    block_shuffled,
    live_server,
    tracked_correlation,
)
from testing.daphne import url_of_test_database
from testing.pages import (
    MakePerson,
    become_friends,
    capture_heard,
    fetch_envelope,
    go_live,
    listen,
)
from testing.processes import Coturn, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.webrtc, pytest.mark.django_db(transaction=True)]
TTL_S = 600

# Every RTCPeerConnection of the page may gather relay candidates only; each one is kept, with
# the configuration it got, for the test to inspect.
RELAY_ONLY_JS = """
(() => {
  const Native = window.RTCPeerConnection;
  const opened = (window.__relayOnly = []);
  window.RTCPeerConnection = class extends Native {
    constructor(config = {}, ...rest) {
      const forced = { ...config, iceTransportPolicy: "relay" };
      super(forced, ...rest);
      opened.push({ pc: this, config: forced });
    }
  };
})();
"""

# The candidates of the pair the page's (last) connection selected, and what came in over it.
SELECTED_PAIR_JS = """
async () => {
  const { pc } = window.__relayOnly.at(-1);
  const stats = await pc.getStats();
  const transport = [...stats.values()].find((s) => s.type === "transport" && s.selectedCandidatePairId);
  if (!transport) return null;
  const pair = stats.get(transport.selectedCandidatePairId);
  const local = stats.get(pair.localCandidateId);
  return {
    localType: local.candidateType,
    localAddress: local.address,
    localPort: local.port,
    relayProtocol: local.relayProtocol,
    remoteType: stats.get(pair.remoteCandidateId).candidateType,
    bytesReceived: pair.bytesReceived,
  };
}
"""


@pytest.fixture(scope="module")
def daphne_server(
    django_db_setup: None, coturn: Coturn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """Daphne as the UI tests start it, with TURN configured for the test coturn."""
    tmp = tmp_path_factory.mktemp("turn-e2e-server")
    server = live_server(
        database_url=url_of_test_database(), media_root=tmp / "media", log_path=tmp / "daphne.log"
    )
    server.env.update(
        TURN_SECRET=coturn.secret, TURN_URLS=",".join(coturn.urls()), TURN_TTL_S=str(TTL_S), ICE_SERVERS="[]"
    )
    server.start()
    print(f"daphne serves {server.url}; its log: {server.log_path}; coturn's: {coturn.log}")
    try:
        yield server
    finally:
        server.stop()


def issued_turn_entry(config: dict[str, Any], coturn: Coturn) -> dict[str, Any]:
    """The page's TURN entry, checked to be a fresh credential for a user, signed with the secret."""
    (entry,) = [server for server in config["iceServers"] if "username" in server]
    assert entry["urls"] == coturn.urls()
    expiry, identity = entry["username"].split(":")
    assert identity.isdigit()  # a user's id: not the server's identity
    assert abs(int(expiry) - (time.time() + TTL_S)) < 120
    assert entry["credential"] == turn_password(coturn.secret, entry["username"])
    return entry


def test_relay_only_listener_hears_the_denoised_stream_through_turn(
    people: MakePerson,
    coturn: Coturn,
) -> None:
    alice, bob = people("alice"), people("bob")
    bob.context.add_init_script(RELAY_ONLY_JS)  # from bob's next page on: the friend page
    become_friends(alice, bob)
    go_live(alice, bob)
    listen(alice, bob)  # fetches /api/ice-servers/, connects, and the heard meter moves

    (config,) = bob.page.evaluate("() => window.__relayOnly.map(({ config }) => config)")
    assert config["iceTransportPolicy"] == "relay"
    turn = issued_turn_entry(config, coturn)

    heard = capture_heard(bob)
    selected = bob.page.evaluate(SELECTED_PAIR_JS)
    print(f"bob's selected candidate pair: {selected}")
    assert selected is not None
    assert selected["localType"] == "relay"  # bob's end of the media path is coturn's relay
    assert 50000 <= selected["localPort"] <= 50999  # the template's relay range
    assert selected["relayProtocol"] == "udp"
    assert selected["bytesReceived"] > 10_000  # seconds of Opus came in over that pair

    alice.page.get_by_role("button", name="Stop streaming").click()
    expect(bob.page.locator("li.recording[data-id]").first).to_be_visible(timeout=20000)
    recording = bob.context.request.get("/api/recordings/alice/").json()[0]
    denoised = fetch_envelope(bob, recording["audio_url"])
    # What came through the relay is alice's denoised stream, half a second at a time; the same
    # half-seconds shuffled score clearly lower.
    follows = tracked_correlation(heard, denoised)
    control = tracked_correlation(heard, block_shuffled(denoised))
    print(f"heard through TURN follows the recording {follows:.2f} (shuffled control {control:.2f})")
    assert follows > 0.8
    assert control < follows - 0.15

    # coturn allocated a relay for bob's credential (its log file offers no event: poll).
    def allocated() -> bool:
        lines = coturn.log.read_text(errors="replace").splitlines()
        return any(turn["username"] in line and "ALLOCATE processed, success" in line for line in lines)

    wait_until(allocated, 5.0, f"coturn's log of an allocation for {turn['username']}")
    assert alice.errors == []
    assert bob.errors == []
