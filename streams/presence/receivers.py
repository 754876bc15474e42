"""Friend-graph signals -> events on the presence sockets of the users concerned.

`users.signals` fire after the transaction commits, in the thread that committed (a sync
view's worker thread), so the group sends run through `async_to_sync`. A Redis failure is
logged, never raised: the friend-graph change itself has already succeeded.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from redis.exceptions import RedisError

from streams.presence.database import iso
from streams.presence.publisher import stream_group, user_group
from users import signals
from users.models import FriendRequest, User

log = logging.getLogger(__name__)
Messages = list[tuple[str, dict[str, Any]]]


def connect() -> None:
    """Called once from StreamsConfig.ready()."""
    signals.friend_request_created.connect(request_created, dispatch_uid="presence.request_created")
    signals.friend_request_updated.connect(request_updated, dispatch_uid="presence.request_updated")
    signals.friendship_created.connect(friendship_created, dispatch_uid="presence.friendship_created")
    signals.friendship_removed.connect(friendship_removed, dispatch_uid="presence.friendship_removed")


def _send(messages: Messages) -> None:
    layer = get_channel_layer()

    async def send_all() -> None:
        await asyncio.gather(*(layer.group_send(group, message) for group, message in messages))

    try:
        async_to_sync(send_all)()
    except (RedisError, OSError):
        log.warning("Could not tell presence sockets about a friend-graph change", exc_info=True)


def _forward(user_id: int, event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return user_group(user_id), {"type": "presence.forward", "event": event}


def request_created(sender: object, request: FriendRequest, **kwargs: object) -> None:
    event = {
        "type": "friend_request",
        "id": request.pk,
        "username": request.from_user.username,
        "created_at": iso(request.created_at),
    }
    _send([_forward(request.to_user_id, event)])


def request_updated(sender: object, request: FriendRequest, **kwargs: object) -> None:
    base = {"type": "friend_request_update", "id": request.pk, "status": request.status}
    _send(
        [
            _forward(
                request.from_user_id, {**base, "username": request.to_user.username, "direction": "outgoing"}
            ),
            _forward(
                request.to_user_id, {**base, "username": request.from_user.username, "direction": "incoming"}
            ),
        ]
    )


def friendship_created(sender: object, user: User, friend: User, **kwargs: object) -> None:
    _send(
        [
            (
                user_group(user.pk),
                {"type": "friend.added", "friend_id": friend.pk, "username": friend.username},
            ),
            (
                user_group(friend.pk),
                {"type": "friend.added", "friend_id": user.pk, "username": user.username},
            ),
        ]
    )


def friendship_removed(sender: object, user: User, friend: User, **kwargs: object) -> None:
    """Both users' open sockets drop each other at once; page viewers are shut out (4403)."""
    _send(
        [
            (
                user_group(user.pk),
                {"type": "friend.removed", "friend_id": friend.pk, "username": friend.username},
            ),
            (
                user_group(friend.pk),
                {"type": "friend.removed", "friend_id": user.pk, "username": user.username},
            ),
            (stream_group(user.pk), {"type": "stream.viewer_removed", "viewer_id": friend.pk}),
            (stream_group(friend.pk), {"type": "stream.viewer_removed", "viewer_id": user.pk}),
        ]
    )
