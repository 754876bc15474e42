"""Fixtures every app's tests share: people, friendships, logged-in clients.

Each app's tests/conftest.py adds its own (database snapshots, services, browsers...).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable

import pytest
from axes.handlers.proxy import AxesProxyHandler
from django.test import Client
from pytest_django.fixtures import Settings

from testing.people import PASSWORD, MakeUser
from users.models import Friendship, User

# Fixtures the apps' tests share (presence, live path, browsers): one plugin, not cross-imports.
pytest_plugins = ["testing.fixtures"]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """WebRTC media stays inside the private network namespace that scripts/netns-run makes."""
    if item.get_closest_marker("webrtc") and os.environ.get("RD_NETNS_INSIDE") != "1":
        pytest.fail(
            "this test opens WebRTC connections: run it inside the private network namespace "
            "(scripts/netns-run .venv/bin/python -m pytest ..., as make test does)",
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def _own_cache(settings: Settings) -> None:
    """A fresh cache per test: sign-in throttling counts there (users/throttling.py)."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}
    }
    AxesProxyHandler.get_implementation(force=True)  # axes keeps the cache it was built with


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Settings) -> None:
    """PBKDF2's deliberate slowness (~0.3 s a user) is not what the tests measure."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def make_user(db: None) -> MakeUser:
    def make(username: str) -> User:
        return User.objects.create_user(username=username, password=PASSWORD)

    return make


@pytest.fixture
def alice(make_user: MakeUser) -> User:
    return make_user("alice")


@pytest.fixture
def bob(make_user: MakeUser) -> User:
    return make_user("bob")


@pytest.fixture
def carol(make_user: MakeUser) -> User:
    return make_user("carol")


@pytest.fixture
def befriend(db: None) -> Callable[[User, User], None]:
    """Make two users friends directly (the rules themselves are tested in users/)."""

    def make(a: User, b: User) -> None:
        low, high = sorted((a, b), key=lambda u: u.pk)
        Friendship.objects.create(user_a=low, user_b=high)

    return make


@pytest.fixture
def client_for() -> Callable[[User], Client]:
    """A session-authenticated client (CSRF not enforced; the CSRF tests enforce it)."""

    def make(user: User) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make
