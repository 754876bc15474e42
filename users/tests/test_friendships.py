"""The friend graph's rules, called directly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from django.dispatch import Signal

from fc25_denoise.errors import BadRequest, Conflict, Forbidden, NotFound
from users import friendships, signals
from users.models import FriendRequest, Friendship, User
from users.tests.conftest import MakeUser

Status = FriendRequest.Status
Events = list[tuple[str, dict[str, Any]]]
Capture = Callable[..., AbstractContextManager[list[Callable[[], None]]]]
SIGNALS = ("friend_request_created", "friend_request_updated", "friendship_created", "friendship_removed")


@pytest.fixture
def events() -> Iterator[Events]:
    """Every users.signals event, in order, as (signal name, kwargs)."""
    seen: Events = []
    receivers: list[tuple[Signal, Callable[..., None]]] = []
    for name in SIGNALS:

        def receiver(sender: object, signal: Signal, name: str = name, **kwargs: Any) -> None:
            seen.append((name, kwargs))

        getattr(signals, name).connect(receiver, weak=False)
        receivers.append((getattr(signals, name), receiver))
    yield seen
    for signal, receiver in receivers:
        signal.disconnect(receiver)


def _names(events: Events) -> list[str]:
    return [name for name, _ in events]


def test_send_then_accept(alice: User, bob: User) -> None:
    request = friendships.send_request(alice, "BOB")  # names are case-insensitive
    assert (request.from_user, request.to_user, request.status) == (alice, bob, Status.PENDING)
    assert friendships.relation(alice, bob) == "request_sent"
    assert friendships.relation(bob, alice) == "request_received"
    accepted = friendships.accept(bob, request.pk)
    assert accepted.status == Status.ACCEPTED
    assert friendships.are_friends(alice, bob)
    assert friendships.are_friends(bob.pk, alice.pk)
    assert friendships.friend_ids(alice) == {bob.pk}
    assert list(friendships.friends_of(bob)) == [alice]
    assert friendships.relation(alice, bob) == "friend"


def test_crossed_request_befriends_at_once(alice: User, bob: User) -> None:
    first = friendships.send_request(alice, "bob")
    second = friendships.send_request(bob, "alice")
    assert second.pk == first.pk  # alice's request was accepted, no new one created
    assert second.status == Status.ACCEPTED
    assert friendships.are_friends(alice, bob)
    assert FriendRequest.objects.get().status == Status.ACCEPTED
    assert Friendship.objects.count() == 1


@pytest.mark.parametrize(
    ("actor", "action", "error"),
    [
        ("alice", friendships.accept, Forbidden),  # the sender can't accept
        ("alice", friendships.reject, Forbidden),
        ("bob", friendships.cancel, Forbidden),  # the addressee can't cancel
        ("carol", friendships.accept, NotFound),  # outsiders don't learn the request exists
        ("carol", friendships.reject, NotFound),
        ("carol", friendships.cancel, NotFound),
    ],
)
def test_who_may_decide(
    alice: User, bob: User, carol: User, actor: str, action: Callable[[User, int], Any], error: type
) -> None:
    request = friendships.send_request(alice, "bob")
    with pytest.raises(error) as caught:
        action(User.objects.get(username=actor), request.pk)
    assert caught.value.status_code in (403, 404)
    request.refresh_from_db()
    assert request.status == Status.PENDING
    assert not Friendship.objects.exists()


@pytest.mark.parametrize(
    ("actor", "action", "status"),
    [("bob", friendships.reject, Status.REJECTED), ("alice", friendships.cancel, Status.CANCELLED)],
)
def test_reject_and_cancel(
    alice: User, bob: User, actor: str, action: Callable[[User, int], Any], status: str
) -> None:
    request = friendships.send_request(alice, "bob")
    assert action(User.objects.get(username=actor), request.pk).status == status
    assert not friendships.are_friends(alice, bob)
    with pytest.raises(Conflict):
        friendships.accept(bob, request.pk)
    # A decided request no longer blocks a new one.
    assert friendships.send_request(alice, "bob").status == Status.PENDING


def test_refusals(alice: User, bob: User, carol: User) -> None:
    with pytest.raises(BadRequest):
        friendships.send_request(alice, "Alice")
    with pytest.raises(NotFound):
        friendships.send_request(alice, "nobody")
    with pytest.raises(NotFound):
        friendships.send_request(alice, "bo\x00b")  # would crash PostgreSQL if queried
    with pytest.raises(NotFound):
        friendships.send_request(alice, "\ud800")  # a lone surrogate can't be encoded
    friendships.send_request(alice, "carol")
    with pytest.raises(Conflict):
        friendships.send_request(alice, "carol")
    friendships.accept(bob, friendships.send_request(alice, "bob").pk)
    with pytest.raises(Conflict):
        friendships.send_request(bob, "alice")
    for bad_id in (0, -1, 2**63, 10**40, 987654):
        with pytest.raises(NotFound):
            friendships.accept(bob, bad_id)


@pytest.mark.parametrize("who_unfriends", ["alice", "bob"])
def test_unfriend_from_either_side(alice: User, bob: User, who_unfriends: str) -> None:
    friendships.accept(bob, friendships.send_request(alice, "bob").pk)
    me, other = (alice, bob) if who_unfriends == "alice" else (bob, alice)
    friendships.unfriend(me, other.username.upper())
    assert not friendships.are_friends(alice, bob)
    assert friendships.friend_ids(alice) == friendships.friend_ids(bob) == set()
    with pytest.raises(NotFound):
        friendships.unfriend(other, me.username)
    with pytest.raises(BadRequest):
        friendships.unfriend(me, me.username)
    # Old accepted requests don't stop them from becoming friends again.
    friendships.accept(me, friendships.send_request(other, me.username).pk)
    assert friendships.are_friends(alice, bob)


def test_signals_fire_only_after_commit(
    alice: User, bob: User, events: Events, django_capture_on_commit_callbacks: Capture
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        request = friendships.send_request(alice, "bob")
    assert events == []  # still waiting for the commit
    for callback in callbacks:
        callback()
    assert events == [("friend_request_created", {"request": request})]
    events.clear()

    with django_capture_on_commit_callbacks(execute=True):
        friendships.accept(bob, request.pk)
    assert _names(events) == ["friendship_created", "friend_request_updated"]
    assert {events[0][1]["user"], events[0][1]["friend"]} == {alice, bob}
    assert events[1][1]["request"].status == Status.ACCEPTED
    events.clear()

    with django_capture_on_commit_callbacks(execute=True):
        friendships.unfriend(alice, "bob")
    assert events == [("friendship_removed", {"user": alice, "friend": bob})]


def test_refused_change_sends_nothing(
    alice: User, bob: User, events: Events, django_capture_on_commit_callbacks: Capture
) -> None:
    friendships.send_request(alice, "bob")
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(Conflict):
        friendships.send_request(alice, "bob")
    assert callbacks == []
    with django_capture_on_commit_callbacks() as callbacks:
        friendships.send_request(bob, "alice")  # crossed
    for callback in callbacks:
        callback()
    assert _names(events) == ["friendship_created", "friend_request_updated"]


def test_relations_for_a_page_in_constant_queries(
    make_user: MakeUser, django_assert_num_queries: Callable[..., AbstractContextManager[Any]]
) -> None:
    me = make_user("me")
    others = [make_user(f"user{n}") for n in range(8)]
    friendships.accept(others[0], friendships.send_request(me, "user0").pk)
    friendships.send_request(me, "user1")
    friendships.send_request(others[2], "me")
    friendships.reject(me, friendships.send_request(others[3], "me").pk)
    with django_assert_num_queries(2):
        relation = friendships.relations(me, [user.pk for user in others])
    assert [relation[user.pk] for user in others[:5]] == [
        "friend",
        "request_sent",
        "request_received",
        "none",  # rejected
        "none",
    ]
    with django_assert_num_queries(0):
        assert friendships.relations(me, []) == {}


def test_search(make_user: MakeUser) -> None:
    me = make_user("Bobby")
    for name in ("bob", "BOBCAT", "rob_bo", "ro_b", "robxb", "alice"):
        make_user(name)
    assert [u.username for u in friendships.search(me, " bo ")] == ["bob", "BOBCAT", "rob_bo"]
    assert [u.username for u in friendships.search(me, "_")] == ["ro_b", "rob_bo"]  # no LIKE wildcard
    assert [u.username for u in friendships.search(me, "%")] == []
    assert friendships.search(me, "") == []
    assert friendships.search(me, "\x00") == []
    assert friendships.search(me, "x" * 5000) == []
    assert friendships.search(me, "' OR 1=1 --") == []


def test_search_returns_at_most_twenty_in_a_stable_order(make_user: MakeUser) -> None:
    me = make_user("me")
    names = [f"Pal{n:02d}" if n % 2 else f"pal{n:02d}" for n in range(25)]
    for name in reversed(names):
        make_user(name)
    found = [u.username for u in friendships.search(me, "PAL")]
    assert found == names[:20]
    assert [u.username for u in friendships.search(me, "PAL")] == found
