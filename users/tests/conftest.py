"""Fixtures for the users app: people, logged-in API clients, and a database snapshot."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from users.models import FriendRequest, Friendship, User

PASSWORD = "correct-horse-battery-9"

MakeUser = Callable[[str], User]
ClientFor = Callable[[User], APIClient]


@pytest.fixture(autouse=True)
def fast_password_hashing() -> Iterator[None]:
    """PBKDF2's deliberate slowness (~0.3 s a user) is not what these tests measure."""
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


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
def client_for() -> ClientFor:
    """A session-authenticated API client (CSRF not enforced; see the CSRF tests for that)."""

    def make(user: User) -> APIClient:
        client = APIClient()
        client.force_login(user)
        return client

    return make


def db_snapshot() -> tuple[list[Any], list[Any], list[Any]]:
    """Every row of the three tables, to prove a refused request changed nothing."""
    return (
        list(User.objects.order_by("pk").values_list()),
        list(Friendship.objects.order_by("pk").values_list()),
        list(FriendRequest.objects.order_by("pk").values_list()),
    )
