"""The pages under the app's Content-Security-Policy (`default-src 'self'`) and Permissions-Policy
(`microphone=(self)`), in a real Chromium against a real Daphne: both pages work through a live
stream and a listener, and Chromium reports no CSP violation on either."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testing.browser import LiveServer, live_server
from testing.daphne import url_of_test_database
from testing.pages import MakePerson, Person, become_friends, go_live, listen, stop_streaming

pytestmark = [pytest.mark.e2e, pytest.mark.webrtc, pytest.mark.django_db(transaction=True)]

# Every violation the page sees, whether or not Chromium also logs it.
RECORD_VIOLATIONS_JS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI} @ ${e.sourceFile}:${e.lineNumber}`);
});
"""


@pytest.fixture(scope="module")
def daphne_server(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("csp-server")
    server = live_server(
        database_url=url_of_test_database(), media_root=tmp / "media", log_path=tmp / "daphne.log"
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _watch(person: Person) -> None:
    person.context.add_init_script(RECORD_VIOLATIONS_JS)
    person.page.reload()


def _violations(person: Person) -> list[str]:
    seen = person.page.evaluate("() => window.__cspViolations || []")
    logged = [e for e in person.errors if "Content Security Policy" in e]
    return [*seen, *logged]


def test_both_pages_work_under_the_csp_without_a_violation(people: MakePerson) -> None:
    alice, bob = people("alice"), people("bob")
    for person in (alice, bob):
        _watch(person)
    response = alice.page.goto("/")
    assert response is not None
    policy = sorted(response.headers["content-security-policy"].split("; "))
    assert policy == [
        "base-uri 'self'",
        "default-src 'self'",  # scripts, styles, sockets, media: this site only, nothing inline
        "form-action 'self'",
        "frame-ancestors 'none'",
        "img-src 'self' data:",
        "object-src 'none'",
    ]
    assert response.headers["permissions-policy"] == "microphone=(self)"
    become_friends(alice, bob)
    go_live(alice, bob)  # the main page: microphone, worklet, WebRTC, presence socket
    listen(alice, bob)  # the friend page: its socket, WebRTC, the level meter
    assert bob.page.evaluate("() => window.__cspViolations") == []  # the page was watched after navigating
    stop_streaming(alice)
    friend_page = bob.page.request.get("/friend/alice/")
    assert "default-src 'self'" in friend_page.headers["content-security-policy"]
    assert (_violations(alice), _violations(bob)) == ([], [])
    assert (alice.errors, bob.errors) == ([], [])
