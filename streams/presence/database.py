"""Presence's database work, on its own thread.

`PresenceDatabase` runs presence's queries on one thread that keeps its connection: with
CONN_MAX_AGE=0, `database_sync_to_async` opens a new connection for every call (a PostgreSQL
backend start each time) and queues behind every consumer's work on the shared sync thread.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.db import InterfaceError, OperationalError, connections
from django.db.models import Q

from users.friendships import friend_ids, friends_of
from users.models import FriendRequest, User

log = logging.getLogger(__name__)
T = TypeVar("T")


class PresenceDatabase:
    """One thread, one kept connection; a broken connection is dropped and the call tried again."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="presence-db")
        call = functools.partial(_call, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def aclose(self) -> None:
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.get_running_loop().run_in_executor(executor, connections.close_all)
            executor.shutdown(wait=False)


def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return fn(*args, **kwargs)
    except (InterfaceError, OperationalError):  # e.g. the database restarted: reconnect once
        connections.close_all()
        return fn(*args, **kwargs)


def iso(value: dt.datetime | None) -> str | None:
    """A datetime as DRF renders it (ISO 8601, "Z" for UTC)."""
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def friend_graph(user_id: int) -> tuple[list[tuple[int, str]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(friends as (id, username), incoming requests, outgoing requests) for the snapshot."""
    friends = list(friends_of(user_id).values_list("pk", "username"))  # type: ignore[arg-type]
    pending = (
        FriendRequest.objects.filter(status=FriendRequest.Status.PENDING)
        .filter(Q(to_user_id=user_id) | Q(from_user_id=user_id))
        .order_by("created_at", "pk")
        .values_list("pk", "from_user_id", "from_user__username", "to_user__username", "created_at")
    )
    incoming, outgoing = [], []
    for pk, from_id, from_name, to_name, created in pending:
        mine = from_id == user_id
        item = {"id": pk, "username": to_name if mine else from_name, "created_at": iso(created)}
        (outgoing if mine else incoming).append(item)
    return friends, incoming, outgoing


def username_of(user_id: int) -> str | None:
    return User.objects.filter(pk=user_id).values_list("username", flat=True).first()


def audience(user_id: int, username: str | None, **flags: bool) -> tuple[str, set[int]] | None:
    """(username, friend ids) of a user, or None for a user deleted meanwhile. `flags`
    (is_online, is_streaming) are written first; `username`, when known, is not read again."""
    if flags and not User.objects.filter(pk=user_id).update(**flags):
        return None
    username = username or username_of(user_id)
    return None if username is None else (username, friend_ids(user_id))


def flagged_users() -> tuple[list[int], list[int]]:
    """(users the database shows live or with an unfinished recording, users it shows online),
    for the reconciler to check against the presence store."""
    streaming = User.objects.filter(Q(is_streaming=True) | Q(recordings__finished=False))
    online = User.objects.filter(is_online=True)
    return (
        sorted(set(streaming.values_list("pk", flat=True))),
        list(online.values_list("pk", flat=True)),
    )
