"""The browser scenario once more with listeners served by Janus: a real Chromium listens to a
friend through a real Janus (the Streaming plugin), the app on Redis as a deployment runs it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testing.browser import LiveServer
from testing.daphne import DaphneServer, app_env, url_of_test_database
from testing.janus import JanusServer, janus_running
from testing.pages import MakePerson, friend_listens_scenario

pytestmark = [pytest.mark.e2e, pytest.mark.webrtc, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def module_janus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JanusServer]:
    with janus_running(tmp_path_factory.mktemp("janus")) as server:
        yield server


@pytest.fixture(scope="module")
def daphne_server(
    django_db_setup: None, redis_url: str, module_janus: JanusServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("e2e-janus-server")
    env = app_env(url_of_test_database(), tmp / "media", REDIS_URL=redis_url, **module_janus.env())
    server = DaphneServer(env, tmp / "daphne.log")
    server.start()
    print(f"daphne serves {server.url} with Janus at {module_janus.url}; its log: {server.log_path}")
    try:
        yield server
    finally:
        server.stop()


def test_friend_listens_through_janus(
    people: MakePerson, daphne_server: LiveServer, module_janus: JanusServer, tmp_path: Path
) -> None:
    friend_listens_scenario(people, daphne_server, tmp_path)
    # bob's audio came from Janus: it set up a viewer's WebRTC media (and the app served none).
    assert "WebRTC media is now available" in module_janus.log.read_text()
    assert daphne_server.metrics()["rd_listeners"] == 0
