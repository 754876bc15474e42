"""Fixtures of the page tests: people, friendships and logged-in Django test clients; and for
the end-to-end tests a Daphne subprocess and Chromium (helpers in frontend/tests/e2e_support.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.test import Client, override_settings
from playwright.sync_api import Browser, sync_playwright

from frontend.tests.e2e_support import (
    LiveServer,
    database_url_for_tests,
    launch_chromium,
    make_microphone_wav,
)
from users.models import Friendship, User

PASSWORD = "correct-horse-battery-9"


@pytest.fixture
def fast_password_hashing() -> Iterator[None]:
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture
def make_user(db: None, fast_password_hashing: None) -> Callable[[str], User]:
    def make(username: str) -> User:
        return User.objects.create_user(username=username, password=PASSWORD)

    return make


@pytest.fixture
def alice(make_user: Callable[[str], User]) -> User:
    return make_user("alice")


@pytest.fixture
def bob(make_user: Callable[[str], User]) -> User:
    return make_user("bob")


@pytest.fixture
def befriend(db: None) -> Callable[[User, User], None]:
    def make(a: User, b: User) -> None:
        low, high = sorted((a, b), key=lambda u: u.pk)
        Friendship.objects.create(user_a=low, user_b=high)

    return make


@pytest.fixture
def client_for() -> Callable[[User], Client]:
    def make(user: User) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make


# ----- end-to-end: a real Daphne and a real Chromium (see test_e2e.py) -----


@pytest.fixture(scope="module")
def daphne_server(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Daphne serving the app on the test database (tests mark themselves transactional, so
    pytest-django creates that database and empties it after each test)."""
    tmp = tmp_path_factory.mktemp("e2e-server")
    server = LiveServer(
        database_url=database_url_for_tests(), media_root=tmp / "media", log_path=tmp / "daphne.log"
    )
    server.start()
    print(f"daphne serves {server.url}; its log: {server.log_path}")  # shown when a test fails
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def browser(transactional_db: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Chromium for one test. It depends on the database fixture so it closes first: Playwright's
    sync API runs an event loop in this thread, where Django's ORM (the flush) refuses to run."""
    microphone = make_microphone_wav(tmp_path_factory.mktemp("e2e-audio") / "microphone.wav")
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright, microphone)
        try:
            yield chromium
        finally:
            chromium.close()
