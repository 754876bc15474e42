"""manage.py seed_demo: the demo accounts, idempotent, never undoing what users did."""

from __future__ import annotations

from collections.abc import Iterator
from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.test import RequestFactory, override_settings

from users import friendships
from users.management.commands.seed_demo import DEMO_PASSWORD
from users.models import FriendRequest, User
from users.tests.conftest import db_snapshot

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("debug_on")]


@pytest.fixture
def debug_on() -> Iterator[None]:
    with override_settings(DEBUG=True):
        yield


def _seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def test_seed_creates_the_demo_world() -> None:
    output = _seed()
    assert DEMO_PASSWORD in output
    assert sorted(User.objects.values_list("username", flat=True)) == ["alice", "bob", "carol", "dave"]
    alice, bob, carol, dave = (User.objects.get(username=n) for n in ("alice", "bob", "carol", "dave"))
    assert (
        authenticate(RequestFactory().post("/accounts/login/"), username="alice", password=DEMO_PASSWORD)
        == alice
    )
    assert friendships.friend_ids(alice) == {bob.pk}
    assert friendships.relation(alice, carol) == "request_received"
    assert friendships.relation(dave, alice) == "none"


def test_seed_twice_changes_nothing() -> None:
    _seed()
    before = db_snapshot()
    _seed()
    assert db_snapshot() == before


def test_seed_keeps_what_users_did() -> None:
    _seed()
    alice = User.objects.get(username="alice")
    friendships.unfriend(alice, "bob")
    carols = FriendRequest.objects.get(from_user__username="carol")
    friendships.reject(alice, carols.pk)
    alice.set_password("alice-changed-hers-1")
    alice.save()
    before = db_snapshot()
    _seed()
    assert db_snapshot() == before


def test_seed_refuses_without_debug_unless_forced() -> None:
    with override_settings(DEBUG=False):
        assert "not created" in _seed()
        assert not User.objects.exists()
        _seed("--force")
    assert User.objects.count() == 4
