"""Presence's outgoing side: the channel-layer groups, and the events about a user sent to them.

`user.<id>` holds a user's presence sockets (for friend-graph news, `streams.presence.receivers`),
`stream.<id>` the sockets on the user's page. `Publisher` sends presence and stream news about a
user to the presence sockets of the user's friends over the presence bus (stream news also to
the user's own sockets and page viewers), writing the user's flags (is_online, is_streaming) to
the database first. Each event carries the store's per-user sequence number under its key
("p:<uid>" presence, "s:<uid>" stream), so consumers drop one overtaken by a newer one sent
from another process.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels.layers import get_channel_layer

from streams.presence.bus import Bus
from streams.presence.database import PresenceDatabase, audience, username_of
from streams.presence.store import StreamState


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def stream_group(user_id: int) -> str:
    return f"stream.{user_id}"


class Publisher:
    """Sends events about users; one per `Presence`, on its database thread."""

    def __init__(self, db: PresenceDatabase, bus: Bus) -> None:
        self._db = db
        self._bus = bus
        self._names: dict[int, str] = {}  # usernames do not change once taken

    async def announce(self, user_id: int, online: bool, seq: int) -> None:
        event = {"type": "presence", "is_online": online}
        await self._publish(user_id, f"p:{user_id}", seq, event, flags={"is_online": online})

    async def publish_stream(
        self, user_id: int, seq: int, state: StreamState | None, flags: dict[str, bool] | None = None
    ) -> None:
        event = {
            "type": "streaming_status",
            "is_streaming": state is not None,
            "started_at": state.started_at if state else None,
            "denoise": state.denoise if state else None,
        }
        await self._publish(user_id, f"s:{user_id}", seq, event, stream=True, flags=flags)

    async def publish_page(self, user_id: int, event: dict[str, Any], *, own: bool) -> None:
        """Send `event` about the user's stream to its page viewers (and the user's own sockets)."""
        username = self._names.get(user_id) or await self._db.run(username_of, user_id)
        if username is None:
            return
        self._names[user_id] = username
        event = {"type": event["type"], "username": username, **event}
        layer = get_channel_layer()
        sends = [layer.group_send(stream_group(user_id), {"type": "stream.event", "event": event})]
        if own:
            sends.append(self._bus.publish({"to": [user_id], "forward": event}))
        await asyncio.gather(*sends)

    async def _publish(
        self,
        user_id: int,
        key: str,
        seq: int,
        event: dict[str, Any],
        *,
        stream: bool = False,
        flags: dict[str, bool] | None = None,
    ) -> None:
        """Send `event` about `user_id` to the user's friends; stream news also to the user's own
        sockets (other tabs) and to viewers of the user's page. `flags` are written to the
        user's row first, in the same trip to the database."""
        found = await self._db.run(audience, user_id, self._names.get(user_id), **(flags or {}))
        if found is None:
            return
        username, friends = found
        self._names[user_id] = username
        event = {"type": event["type"], "username": username, **event}
        to = sorted({*friends, *([user_id] if stream else [])})
        sends = [self._bus.publish({"to": to, "about": user_id, "key": key, "seq": seq, "event": event})]
        if stream:
            page = {"type": "stream.event", "key": key, "seq": seq, "event": event}
            sends.append(get_channel_layer().group_send(stream_group(user_id), page))
        await asyncio.gather(*sends)
