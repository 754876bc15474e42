"""Races on one pair of users: crossed requests and double accepts, each thread on its own connection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connections

from fc25_denoise.errors import Conflict
from users import friendships
from users.models import FriendRequest, Friendship, User

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 4


def _together(*calls: Callable[[], Any]) -> list[BaseException | None]:
    """Run the calls at the same moment in threads; return each one's exception (or None)."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        try:
            barrier.wait(timeout=10)
            return call()
        finally:
            connections.close_all()  # this thread's own connection

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        return [future.exception(timeout=60) for future in futures]


def _only_conflicts(errors: list[BaseException | None]) -> None:
    for error in errors:
        assert error is None or (isinstance(error, Conflict) and error.status_code == 409), repr(error)


def _pair(n: int) -> tuple[User, User]:
    return (
        User.objects.create_user(username=f"left{n}", password="x"),
        User.objects.create_user(username=f"right{n}", password="x"),
    )


def test_crossed_requests_make_exactly_one_friendship() -> None:
    for n in range(ROUNDS):
        left, right = _pair(n)
        errors = _together(
            lambda left=left, right=right: friendships.send_request(left, right.username),
            lambda left=left, right=right: friendships.send_request(right, left.username),
        )
        _only_conflicts(errors)
        assert errors == [None, None]  # the second sender completes the first request
        assert friendships.are_friends(left, right)
        assert Friendship.objects.filter(user_a__in=(left, right)).count() == 1
        assert not FriendRequest.objects.filter(
            from_user__in=(left, right), status=FriendRequest.Status.PENDING
        ).exists()


def test_double_accept_makes_exactly_one_friendship() -> None:
    for n in range(ROUNDS):
        left, right = _pair(n)
        request = friendships.send_request(left, right.username)
        errors = _together(
            lambda right=right, pk=request.pk: friendships.accept(right, pk),
            lambda right=right, pk=request.pk: friendships.accept(right, pk),
        )
        _only_conflicts(errors)
        assert sum(error is None for error in errors) == 1
        assert Friendship.objects.filter(user_a__in=(left, right)).count() == 1
        request.refresh_from_db()
        assert request.status == FriendRequest.Status.ACCEPTED
