"""The friend graph's rules: requests, acceptance, unfriending, and who may see whom.

Every change locks both users' rows first, so crossed requests and double accepts on the
same pair serialize instead of racing (PostgreSQL row locks; on SQLite every transaction takes
the write lock at BEGIN, see the "users" block of settings.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Lower

from fc25_denoise.errors import BadRequest, Conflict, Forbidden, NotFound
from users import signals
from users.models import FriendRequest, Friendship, User

Status = FriendRequest.Status
USERNAME_MAX = User._meta.get_field("username").max_length or 150
SEARCH_LIMIT = 20
ID_MAX = 2**63 - 1  # largest primary key a bigint column holds
ECHO_MAX = 40  # longest name an error message repeats


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
    ).order_by(Lower("username"), "pk")


def friend_ids(user: User | int) -> set[int]:
    uid = user if isinstance(user, int) else user.pk
    rows = Friendship.objects.filter(Q(user_a_id=uid) | Q(user_b_id=uid)).values_list(
        "user_a_id", "user_b_id"
    )
    return {b if a == uid else a for a, b in rows}


def storable(text: str) -> bool:
    """False for text no database column can hold (NUL, lone surrogates); querying it would crash."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def find_user(username: str) -> User:
    if len(username) <= USERNAME_MAX and storable(username):
        try:
            return User.objects.get(username__iexact=username)
        except User.DoesNotExist:
            pass
    # Say which name when it is short and plain; never echo a long or odd input back.
    if len(username) <= ECHO_MAX and username.isprintable() and storable(username):
        raise NotFound(f"No user named {username!r}.")
    raise NotFound("No user has that name.")


def _befriend(a: User, b: User) -> None:
    ida, idb = _pair(a, b)
    Friendship.objects.create(user_a_id=ida, user_b_id=idb)
    _after_commit(signals.friendship_created, user=a, friend=b)


def send_request(sender: User, username: str) -> FriendRequest:
    """Send a request; if the addressee already asked us, accept theirs instead."""
    target = find_user(username)
    if target.pk == sender.pk:
        raise BadRequest("You cannot send a friend request to yourself.")
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
    if not 0 < request_id <= ID_MAX:
        raise NotFound("No such friend request.")
    try:
        with transaction.atomic():
            request = FriendRequest.objects.select_related("from_user", "to_user").get(pk=request_id)
            if (request.from_user_id if as_sender else request.to_user_id) != user.pk:
                if user.pk not in (request.from_user_id, request.to_user_id):
                    raise NotFound(f"No friend request with id {request_id}.")
                role = "sender" if as_sender else "addressee"
                raise Forbidden(f"Only the request's {role} can do that.")
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
    if other.pk == user.pk:
        raise BadRequest("You cannot unfriend yourself.")
    with transaction.atomic():
        _lock_pair(user, other)
        ida, idb = _pair(user, other)
        deleted, _ = Friendship.objects.filter(user_a_id=ida, user_b_id=idb).delete()
        if not deleted:
            raise NotFound(f"You are not friends with {other.username}.")
        _after_commit(signals.friendship_removed, user=user, friend=other)


def relations(user: User, other_ids: Iterable[int]) -> dict[int, str]:
    """Map each id to friend, request_sent, request_received or none, in two queries."""
    ids = set(other_ids)
    result = dict.fromkeys(ids, "none")
    if not ids:
        return result
    pending = FriendRequest.objects.filter(status=Status.PENDING).filter(
        Q(from_user=user, to_user_id__in=ids) | Q(to_user=user, from_user_id__in=ids)
    )
    for from_id, to_id in pending.values_list("from_user_id", "to_user_id"):
        result[to_id if from_id == user.pk else from_id] = (
            "request_sent" if from_id == user.pk else "request_received"
        )
    pairs = Friendship.objects.filter(
        Q(user_a=user, user_b_id__in=ids) | Q(user_b=user, user_a_id__in=ids)
    ).values_list("user_a_id", "user_b_id")
    for a, b in pairs:  # friendship wins over a stale pending request
        result[b if a == user.pk else a] = "friend"
    return result


def relation(user: User, other: User | int) -> str:
    """friend, request_sent, request_received or none."""
    oid = other if isinstance(other, int) else other.pk
    return relations(user, [oid])[oid]


def search(user: User, query: str, limit: int = SEARCH_LIMIT) -> list[User]:
    """Active users whose name contains `query` (any case), without `user`, by name then id."""
    query = query.strip()
    if not query or len(query) > USERNAME_MAX or not storable(query):
        return []  # nothing can match, so don't ask the database
    found = (
        User.objects.filter(username__icontains=query, is_active=True)
        .exclude(pk=user.pk)
        .order_by(Lower("username"), "pk")
    )
    return list(found[:limit])


def pending_requests(user: User) -> tuple[list[FriendRequest], list[FriendRequest]]:
    """(incoming, outgoing) pending requests, oldest first, with both users loaded."""
    pending = (
        FriendRequest.objects.filter(status=Status.PENDING)
        .filter(Q(to_user=user) | Q(from_user=user))
        .select_related("from_user", "to_user")
        .order_by("created_at", "pk")
    )
    incoming: list[FriendRequest] = []
    outgoing: list[FriendRequest] = []
    for request in pending:
        (incoming if request.to_user_id == user.pk else outgoing).append(request)
    return incoming, outgoing
