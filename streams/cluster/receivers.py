"""A friendship that ends cuts the ex-friend's listening at once, wherever it runs.

`users.signals.friendship_removed` fires after the commit, in the thread that committed; the
notice goes over the channel layer to the group of each user's stream owner (a process joins
`live-owner.<uid>` while it owns that stream), which hangs up the ex-friend's listeners:
its own hub's, or the Janus handles any process made. Nobody live: nobody in the group.
"""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from streams.cluster.control import LAYER_ERRORS, owner_group
from users import signals
from users.models import User

log = logging.getLogger(__name__)


def connect() -> None:
    """Called once from StreamsConfig.ready()."""
    signals.friendship_removed.connect(friendship_removed, dispatch_uid="cluster.friendship_removed")


def _cut(owner_id: int, viewer_id: int) -> dict[str, object]:
    return {"type": "control.notice", "action": "cut", "args": {"owner_id": owner_id, "viewer_id": viewer_id}}


def friendship_removed(sender: object, user: User, friend: User, **kwargs: object) -> None:
    layer = get_channel_layer()

    async def send_both() -> None:
        await asyncio.gather(
            layer.group_send(owner_group(user.pk), _cut(user.pk, friend.pk)),
            layer.group_send(owner_group(friend.pk), _cut(friend.pk, user.pk)),
        )

    try:
        async_to_sync(send_both)()
    except LAYER_ERRORS:
        log.warning("Could not cut the listening of an unfriended pair", exc_info=True)
