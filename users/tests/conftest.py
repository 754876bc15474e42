"""Fixtures for the users app: people, logged-in API clients, and a database snapshot."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.test import Client

from testing.people import PASSWORD, MakeUser  # noqa: F401 - re-exported
from users.models import FriendRequest, Friendship, User

ClientFor = Callable[[User], Client]


def db_snapshot() -> tuple[list[Any], list[Any], list[Any]]:
    """Every row of the three tables, to prove a refused request changed nothing."""
    return (
        list(User.objects.order_by("pk").values_list()),
        list(Friendship.objects.order_by("pk").values_list()),
        list(FriendRequest.objects.order_by("pk").values_list()),
    )
