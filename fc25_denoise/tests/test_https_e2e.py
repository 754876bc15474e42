"""HTTPS way 1: nginx (deploy/nginx template, self-signed certificate) in front of one Daphne
started as the systemd unit starts it (DEBUG=0, --proxy-headers, loopback).

The UI's browser scenario (frontend/tests/test_e2e.py) runs once more through the proxy:
sign-in, presence over wss://, streaming and listening. The proxy's own duties are checked
directly: WebSocket upgrades, the body limit, and that no client reaches /metrics through it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, sync_playwright

from testing import prod_server
from testing.browser import LiveServer, launch_chromium, make_microphone_wav
from testing.pages import friend_listens_scenario
from testing.processes import free_port
from testing.prod_server import ADMIN, Production


@dataclass
class ProxiedSite:
    """The site as browsers see it (nginx, https) and Daphne behind it (loopback http)."""

    url: str
    http_url: str
    daphne_url: str
    access_log: Path

    def metrics(self) -> dict[str, float]:
        # Straight from Daphne on loopback: through nginx /metrics is for staff only.
        return LiveServer.metrics(SimpleNamespace(base_url=self.daphne_url))  # type: ignore[arg-type]

    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request nginx has logged so far."""
        pattern = re.compile(r'"(\w+) (\S+) HTTP/[\d.]+" (\d{3}) ')
        found = (pattern.search(line) for line in self.access_log.read_text().splitlines())
        return [(m[1], m[2], int(m[3])) for m in found if m]


@pytest.fixture(scope="module")
def site(production: Production) -> Iterator[ProxiedSite]:
    daphne_port, http_port, https_port = free_port(), free_port(), free_port()
    daphne = production.start_daphne(
        "--bind", "127.0.0.1", "--port", str(daphne_port), "--proxy-headers", env={"BEHIND_PROXY": "1"}
    )
    daphne_url = f"http://127.0.0.1:{daphne_port}"
    prod_server.wait_healthy(daphne_url, production.cert, daphne)
    main = prod_server.nginx_config(production, f"127.0.0.1:{daphne_port}", http_port, https_port)
    nginx = production.start("nginx", prod_server.nginx_args(main))
    url = f"https://localhost:{https_port}"
    prod_server.wait_healthy(url, production.cert, nginx)
    yield ProxiedSite(url, f"http://localhost:{http_port}", daphne_url, main.parent / "nginx-access.log")
    prod_server.stop(nginx)
    prod_server.stop(daphne)


class CertTrustingBrowser:
    """Chromium whose contexts accept the self-signed test certificate (pages, wss:// and the
    context's own API requests alike); it remembers them, so a test can close them early."""

    def __init__(self, browser: Browser) -> None:
        self._browser = browser
        self.contexts: list[BrowserContext] = []

    def new_context(self, **options: Any) -> BrowserContext:
        self.contexts.append(self._browser.new_context(**options, ignore_https_errors=True))
        return self.contexts[-1]

    def close_contexts(self) -> None:
        while self.contexts:
            self.contexts.pop().close()


# The UI scenario's own `people` fixture runs on these two instead of its plain-HTTP ones.
@pytest.fixture
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CertTrustingBrowser]:
    microphone = make_microphone_wav(tmp_path_factory.mktemp("https-e2e-audio") / "microphone.wav")
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright, microphone)
        trusting = CertTrustingBrowser(chromium)
        try:
            yield trusting
        finally:
            trusting.close_contexts()
            chromium.close()


@pytest.fixture
def daphne_server(site: ProxiedSite) -> ProxiedSite:
    return site


@pytest.mark.e2e
@pytest.mark.webrtc
def test_the_browser_scenario_works_over_https_through_nginx(
    request: pytest.FixtureRequest, browser: CertTrustingBrowser, site: ProxiedSite, tmp_path: Path
) -> None:
    crowd = request.getfixturevalue("people")  # the UI's fixture, on this module's browser and server
    friend_listens_scenario(crowd, site, tmp_path)  # type: ignore[arg-type]
    browser.close_contexts()  # nginx logs a WebSocket when it closes
    seen = site.requests()
    assert ("POST", "/accounts/register/", 302) in seen
    assert ("GET", "/ws/presence/", 101) in seen  # presence over wss://, through the proxy
    assert ("POST", "/api/stream/start/", 201) in seen
    assert ("POST", "/api/webrtc/offer/", 200) in seen
    assert ("POST", "/api/webrtc/listen/alice/", 200) in seen
    assert ("GET", "/api/ice-servers/", 200) in seen  # asked before each peer connection
    assert [p for _, p, status in seen if re.fullmatch(r"/api/recordings/\d+/peaks/", p) and status == 200]
    assert not [entry for entry in seen if entry[2] >= 500]


def test_websocket_upgrade_and_secure_cookies_pass_the_proxy(
    production: Production, site: ProxiedSite
) -> None:
    answer = prod_server.login(site.url, production.cert, *ADMIN)
    assert answer.status == 302
    session = answer.cookies()["sessionid"]
    assert session["secure"] is True
    assert session["httponly"] is True
    first = prod_server.websocket_first_message(
        site.url, production.cert, "/ws/presence/", f"sessionid={session.value}"
    )
    assert first["type"] == "snapshot"


def test_proxy_limits_bodies_and_hides_metrics(production: Production, site: ProxiedSite) -> None:
    big = prod_server.request(
        site.url, "/api/stream/start/", cert=production.cert, method="POST", body=b"x" * (1024 * 1024 + 1)
    )
    assert big.status == 413
    # Whatever the client claims, the app sees nginx's X-Forwarded-For: not a loopback client.
    for headers in ({}, {"X-Forwarded-For": "127.0.0.1"}):
        metrics = prod_server.request(site.url, "/metrics", cert=production.cert, headers=headers)
        assert metrics.status == 403
        assert "error" in metrics.json()
    assert prod_server.request(site.daphne_url, "/metrics").status == 200


def test_plain_http_is_redirected_to_https(site: ProxiedSite) -> None:
    answer = prod_server.request(site.http_url, "/friend/alice/?x=1")
    assert answer.status == 301
    assert answer.headers["Location"] == "https://localhost/friend/alice/?x=1"


def test_proxy_throttles_the_sign_in_pages_per_address(production: Production, site: ProxiedSite) -> None:
    """Last in this module: afterwards this address is throttled on /accounts/ for a minute."""
    statuses = [
        prod_server.request(site.url, "/accounts/login/", cert=production.cert).status for _ in range(45)
    ]
    # The burst (20, less what the scenario above used) is answered; then one a minute.
    assert statuses[:10] == [200] * 10
    assert statuses[-5:] == [429] * 5
    admin = prod_server.request(site.url, "/admin/login/", cert=production.cert)
    assert admin.status == 429  # the admin's sign-in shares the limit
    assert prod_server.request(site.url, "/healthz", cert=production.cert).status == 200  # others not
