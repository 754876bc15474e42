"""The friend graph's rules: requests, acceptance, unfriending, and who may see whom.

Every change locks both users' rows first, so crossed requests and double accepts on the
same pair serialize instead of racing (PostgreSQL row locks; SQLite serializes writers).
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet

from users import signals
from users.exceptions import Conflict, InvalidRequest, NotAllowed, NotFound
from users.models import FriendRequest, Friendship, User

Status = FriendRequest.Status


def _pair(a: User | int, b: User | int) -> tuple[int, int]:
    ida, idb = (x if isinstance(x, int) else x.pk for x in (a, b))
    return (ida, idb) if ida < idb else (idb, ida)


def _lock_pair(a: User, b: User) -> None:
    list(User.objects.select_for_update().filter(pk__in=_pair(a, b)).order_by("pk"))


def _after_commit(signal: object, **kwargs: object) -> None:
    transaction.on_commit(lambda: signal.send(sender=Friendship, **kwargs))  # type: ignore[attr-defined]


def are_friends(a: User | int, b: User | int) -> bool:
    ida, idb = _pair(a, b)
    return ida != idb and Friendship.objects.filter(user_a_id=ida, user_b_id=idb).exists()


def friends_of(user: User) -> QuerySet[User]:
    return User.objects.filter(
        Q(pk__in=Friendship.objects.filter(user_a=user).values("user_b"))
        | Q(pk__in=Friendship.objects.filter(user_b=user).values("user_a"))
    ).order_by("username")


def friend_ids(user: User | int) -> set[int]:
    uid = user if isinstance(user, int) else user.pk
    rows = Friendship.objects.filter(Q(user_a_id=uid) | Q(user_b_id=uid)).values_list(
        "user_a_id", "user_b_id"
    )
    return {b if a == uid else a for a, b in rows}


def find_user(username: str) -> User:
    try:
        return User.objects.get(username__iexact=username)
    except User.DoesNotExist as exc:
        raise NotFound(f"No user named {username!r}.") from exc


def _befriend(a: User, b: User) -> None:
    ida, idb = _pair(a, b)
    Friendship.objects.create(user_a_id=ida, user_b_id=idb)
    _after_commit(signals.friendship_created, user=a, friend=b)


def send_request(sender: User, username: str) -> FriendRequest:
    """Send a request; if the addressee already asked us, accept theirs instead."""
    target = find_user(username)
    if target.pk == sender.pk:
        raise InvalidRequest("You cannot send a friend request to yourself.")
    try:
        with transaction.atomic():
            _lock_pair(sender, target)
            if are_friends(sender, target):
                raise Conflict(f"You are already friends with {target.username}.")
            if FriendRequest.objects.filter(from_user=sender, to_user=target, status=Status.PENDING).exists():
                raise Conflict(f"A request to {target.username} is already pending.")
            crossed = FriendRequest.objects.filter(
                from_user=target, to_user=sender, status=Status.PENDING
            ).first()
            if crossed is not None:
                return _accept_locked(crossed)
            request = FriendRequest.objects.create(from_user=sender, to_user=target)
            _after_commit(signals.friend_request_created, request=request)
            return request
    except IntegrityError as exc:  # a concurrent writer won on a backend without row locks
        raise Conflict("That friend request changed at the same time; try again.") from exc


def _accept_locked(request: FriendRequest) -> FriendRequest:
    request.status = Status.ACCEPTED
    request.save(update_fields=["status", "updated_at"])
    if not are_friends(request.from_user_id, request.to_user_id):
        _befriend(request.to_user, request.from_user)
    _after_commit(signals.friend_request_updated, request=request)
    return request


def _decide(user: User, request_id: int, *, as_sender: bool, new_status: str) -> FriendRequest:
    try:
        with transaction.atomic():
            request = FriendRequest.objects.select_related("from_user", "to_user").get(pk=request_id)
            if (request.from_user_id if as_sender else request.to_user_id) != user.pk:
                if user.pk not in (request.from_user_id, request.to_user_id):
                    raise NotFound(f"No friend request with id {request_id}.")
                role = "sender" if as_sender else "addressee"
                raise NotAllowed(f"Only the request's {role} can do that.")
            _lock_pair(request.from_user, request.to_user)
            request.refresh_from_db(fields=["status"])
            if request.status != Status.PENDING:
                raise Conflict(f"This request is already {request.status}.")
            if new_status == Status.ACCEPTED:
                return _accept_locked(request)
            request.status = new_status
            request.save(update_fields=["status", "updated_at"])
            _after_commit(signals.friend_request_updated, request=request)
            return request
    except FriendRequest.DoesNotExist as exc:
        raise NotFound(f"No friend request with id {request_id}.") from exc
    except IntegrityError as exc:
        raise Conflict("That friend request changed at the same time; try again.") from exc


def accept(user: User, request_id: int) -> FriendRequest:
    return _decide(user, request_id, as_sender=False, new_status=Status.ACCEPTED)


def reject(user: User, request_id: int) -> FriendRequest:
    return _decide(user, request_id, as_sender=False, new_status=Status.REJECTED)


def cancel(user: User, request_id: int) -> FriendRequest:
    return _decide(user, request_id, as_sender=True, new_status=Status.CANCELLED)


def unfriend(user: User, username: str) -> None:
    other = find_user(username)
    with transaction.atomic():
        _lock_pair(user, other)
        ida, idb = _pair(user, other)
        deleted, _ = Friendship.objects.filter(user_a_id=ida, user_b_id=idb).delete()
        if not deleted:
            raise NotFound(f"You are not friends with {other.username}.")
        _after_commit(signals.friendship_removed, user=user, friend=other)


def relation(user: User, other: User | int) -> str:
    """friend, request_sent, request_received or none."""
    oid = other if isinstance(other, int) else other.pk
    if are_friends(user, oid):
        return "friend"
    pending = FriendRequest.objects.filter(status=Status.PENDING)
    if pending.filter(from_user=user, to_user_id=oid).exists():
        return "request_sent"
    if pending.filter(from_user_id=oid, to_user=user).exists():
        return "request_received"
    return "none"
