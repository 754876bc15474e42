"""Fixtures of the page tests: people, friendships and logged-in Django test clients; and for
the end-to-end tests a Daphne subprocess and Chromium (helpers in testing/browser.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testing.browser import (
    LiveServer,
    live_server,
)
from testing.daphne import url_of_test_database
from testing.people import PASSWORD  # noqa: F401 - re-exported

# ----- end-to-end: a real Daphne and a real Chromium (see test_e2e.py) -----


@pytest.fixture(scope="module")
def daphne_server(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Daphne serving the app on the test database (tests mark themselves transactional, so
    pytest-django creates that database and empties it after each test)."""
    tmp = tmp_path_factory.mktemp("e2e-server")
    server = live_server(
        database_url=url_of_test_database(), media_root=tmp / "media", log_path=tmp / "daphne.log"
    )
    server.start()
    print(f"daphne serves {server.url}; its log: {server.log_path}")  # shown when a test fails
    try:
        yield server
    finally:
        server.stop()
