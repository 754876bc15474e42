"""Presence's read side: what sockets and the poll are shown of the state in a `PresenceStore`.

`snapshot` is a user's friends (online, live) and pending requests: the presence socket's
first message and the body of GET /api/presence/. `friend_entry` is one friend's part of it
(sent when a friendship starts); `stream_state` is the first message on a stream page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.presence.database import PresenceDatabase, friend_graph
from streams.presence.store import PresenceStore, StreamState


@dataclass
class Snapshot:
    payload: dict[str, Any]
    friend_ids: set[int]


async def snapshot(store: PresenceStore, db: PresenceDatabase, user_id: int) -> Snapshot:
    """Every friend's state and the user's pending requests."""
    friends, incoming, outgoing = await db.run(friend_graph, user_id)
    ids = [uid for uid, _ in friends]
    online, streams = await store.online(ids), await store.streams(ids)
    payload = {
        "type": "snapshot",
        "friends": [_entry(uid, name, uid in online, streams.get(uid)) for uid, name in friends],
        "requests": {"incoming": incoming, "outgoing": outgoing},
    }
    return Snapshot(payload=payload, friend_ids=set(ids))


async def friend_entry(store: PresenceStore, user_id: int, username: str) -> dict[str, Any]:
    online = await store.online([user_id])
    return _entry(user_id, username, user_id in online, (await store.streams([user_id])).get(user_id))


async def stream_state(store: PresenceStore, user_id: int, username: str) -> dict[str, Any]:
    state = (await store.streams([user_id])).get(user_id)
    return {
        "type": "stream_state",
        "username": username,
        "is_streaming": state is not None,
        "started_at": state.started_at if state else None,
        "denoise": state.denoise if state else None,
        "atten_lim_db": state.atten_lim_db if state else None,
        "listeners": state.listeners if state else 0,
        "recording": state.recording if state else None,
    }


def _entry(user_id: int, username: str, online: bool, stream: StreamState | None) -> dict[str, Any]:
    return {
        "id": user_id,
        "username": username,
        "is_online": online,
        "is_streaming": stream is not None,
        "started_at": stream.started_at if stream else None,
        "listeners": stream.listeners if stream else 0,
    }
