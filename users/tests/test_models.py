"""The database itself refuses broken friend-graph rows (not just form or model validation)."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate
from django.db import IntegrityError, transaction
from django.test import RequestFactory

from users.models import FriendRequest, Friendship, User
from users.tests.conftest import PASSWORD, MakeUser


def _ordered(a: User, b: User) -> tuple[User, User]:
    return (a, b) if a.pk < b.pk else (b, a)


def test_friendship_stored_in_canonical_order(alice: User, bob: User) -> None:
    low, high = _ordered(alice, bob)
    Friendship.objects.create(user_a=low, user_b=high)
    with pytest.raises(IntegrityError), transaction.atomic():
        Friendship.objects.create(user_a=high, user_b=low)


def test_friendship_pair_is_unique(alice: User, bob: User) -> None:
    low, high = _ordered(alice, bob)
    Friendship.objects.create(user_a=low, user_b=high)
    with pytest.raises(IntegrityError), transaction.atomic():
        Friendship.objects.create(user_a=low, user_b=high)
    assert Friendship.objects.count() == 1


def test_no_self_friendship(alice: User) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Friendship.objects.create(user_a=alice, user_b=alice)


def test_one_pending_request_per_ordered_pair(alice: User, bob: User) -> None:
    FriendRequest.objects.create(from_user=alice, to_user=bob)
    with pytest.raises(IntegrityError), transaction.atomic():
        FriendRequest.objects.create(from_user=alice, to_user=bob)
    # Decided requests don't count, and the reverse direction is a different ordered pair.
    FriendRequest.objects.create(from_user=alice, to_user=bob, status=FriendRequest.Status.REJECTED)
    FriendRequest.objects.create(from_user=bob, to_user=alice)
    assert FriendRequest.objects.count() == 3


def test_no_request_to_self(alice: User) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        FriendRequest.objects.create(from_user=alice, to_user=alice)


def test_username_unique_regardless_of_case(alice: User) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(username="ALICE")
    assert User.objects.count() == 1


def test_login_name_is_case_insensitive(make_user: MakeUser) -> None:
    user = make_user("Alice")
    assert User.objects.get_by_natural_key("aLiCe") == user
    assert (
        authenticate(RequestFactory().post("/accounts/login/"), username="ALICE", password=PASSWORD) == user
    )
    assert authenticate(RequestFactory().post("/accounts/login/"), username="ALICE", password="wrong") is None
