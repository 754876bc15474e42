"""Presence's database work (on its own thread), and one message to many groups at once.

`PresenceDatabase` runs presence's queries on one thread that keeps its connection: with
CONN_MAX_AGE=0, `database_sync_to_async` opens a new connection for every call (a PostgreSQL
backend start each time) and queues behind every consumer's work on the shared sync thread.

channels-redis's `group_send` costs four round trips per group, so telling 20 friends took
~25 ms of CPU per event; here all groups' members are read in one pipeline and the message is
queued with one script per Redis host, one entry per receiving process (as `group_send` does
per group). It relies on channels-redis 4.3 internals (`_group_key`, `consistent_hash`,
`_map_channel_keys_to_connection`, `connection`, `expiry`, `group_expiry`); other layers (the
in-memory one) get one `group_send` per group.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from channels_redis.core import RedisChannelLayer
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


# channels-redis's own group_send script, plus dropping expired messages first (which it does
# in a separate round trip): capacity counts only live messages.
_SEND = """
local now, expiry = tonumber(ARGV[#ARGV - 1]), tonumber(ARGV[#ARGV])
local over = 0
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, now - expiry)
  if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[i + #KEYS]) then
    redis.call('ZADD', KEYS[i], now, ARGV[i])
    redis.call('EXPIRE', KEYS[i], expiry)
  else
    over = over + 1
  end
end
return over
"""


async def group_send_many(layer: Any, groups: list[str], message: dict[str, Any]) -> None:
    if not groups:
        return
    if not isinstance(layer, RedisChannelLayer):
        await asyncio.gather(*(layer.group_send(group, message) for group in groups))
        return
    channels = sorted(await _members(layer, groups))
    by_host, payloads, capacities = layer._map_channel_keys_to_connection(channels, message)
    for index, keys in by_host.items():
        args = (
            [payloads[key] for key in keys] + [capacities[key] for key in keys] + [time.time(), layer.expiry]
        )
        over = await layer.connection(index).eval(_SEND, len(keys), *keys, *args)
        if over:
            log.warning("%d process queue(s) full: an event about %s was dropped there", over, groups)


async def _members(layer: RedisChannelLayer, groups: list[str]) -> set[str]:
    keys_by_host: dict[int, list[bytes]] = defaultdict(list)
    for group in groups:
        keys_by_host[layer.consistent_hash(group)].append(layer._group_key(group))
    oldest = int(time.time()) - layer.group_expiry
    channels: set[str] = set()
    for index, keys in keys_by_host.items():
        async with layer.connection(index).pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zremrangebyscore(key, min=0, max=oldest)
                pipe.zrange(key, 0, -1)
            rows = await pipe.execute()
        channels.update(member.decode() for row in rows[1::2] for member in row)
    return channels
