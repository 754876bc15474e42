"""WebSocket consumers: the presence feed and one user's stream page.

ws/presence/ (PresenceConsumer), for a logged-in user. Server messages, each a JSON object:
  snapshot               first message: {"friends": [{id, username, is_online, is_streaming,
                         started_at, listeners}], "requests": {"incoming": [{id, username,
                         created_at}], "outgoing": [...]}} (same body as GET /api/presence/)
  presence               a friend came online / went offline: {username, is_online}
  streaming_status       a friend (or I, from another tab) went live / ended: {username,
                         is_streaming, started_at, denoise}; started_at/denoise null when ended
  friend_request         new incoming request: {id, username, created_at}
  friend_request_update  a request I sent or received was decided: {id, username (the other
                         party), status: accepted|rejected|cancelled, direction: incoming|outgoing}
  friend_added           {id, username, is_online, is_streaming, started_at, listeners}
  friend_removed         {id, username}; nothing more about that user arrives afterwards
  listeners              listeners of my own stream changed: {username, count}
ws/stream/<username>/ (StreamConsumer), for the user or a friend on that user's page:
  stream_state           first message: {username, is_streaming, started_at, denoise,
                         atten_lim_db, listeners}
  streaming_status, listeners (as above), settings {username, denoise, atten_lim_db}
Client frames on both: {"type": "ping"} -> {"type": "pong"}. Anything else (binary, not JSON,
unknown type, over 4096 bytes) -> {"type": "error", "error": "<sentence>"}; the socket stays open.
  recording              my stream goes on but its recording stopped: {username, state:
                         "stopped", reason: "storage_full", message}
  source                 the broadcaster's audio stopped coming or came back (listeners hear
                         silence meanwhile): {username, state: "stalled"|"ok", message}; on the
                         stream page and the broadcaster's own presence sockets
  server_restarting      the server shuts down (a restart): {message}; then close 4012
Close codes: 4401 not logged in, 4403 not (or no longer) a friend of the page's owner,
4404 no such user (or no such WebSocket path at all), 4429 this user already has
MAX_PRESENCE_SOCKETS presence sockets open (over all processes), 4011 the presence store or the
channel layer is unreachable (reconnect), 4012 the server restarts (reconnect), 1009 (Daphne's
own) a frame over Daphne's 1 MB message limit. (Daphne lets an application send only 1000 and
3000-4999: 4011 and 4012 are the standard 1011 "internal error" and 1012 "service restart" moved
into the private range.) The server accepts the handshake and closes at once with the code, so
browsers see it (a refused handshake shows as 1006). Whatever ends a socket (the client, an
error of the channel layer, shutdown), its disconnect path runs once, so presence never counts
it again.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from redis.exceptions import RedisError

from fc25_denoise.errors import NotFound
from streams.presence.publisher import stream_group, user_group
from streams.presence.service import STORE_ERRORS, Presence
from users.friendships import are_friends, find_user

log = logging.getLogger(__name__)
MAX_FRAME_BYTES = 4096
CLOSE_UNAUTHENTICATED, CLOSE_FORBIDDEN, CLOSE_NOT_FOUND, CLOSE_SERVER_ERROR = 4401, 4403, 4404, 4011
CLOSE_TOO_MANY = 4429
CLOSE_RESTARTING = 4012
RESTARTING = {"type": "server_restarting", "message": "The server is restarting; reconnecting in a moment."}


def answer(text: str | None) -> dict[str, str]:
    """The reply to one client frame."""
    if text is None:
        return _error("Frames must be JSON text, not binary.")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES:
        return _error(f"Frames are limited to {MAX_FRAME_BYTES} bytes.")
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        return _error("Frames must be JSON.")
    if isinstance(message, dict) and message.get("type") == "ping":
        return {"type": "pong"}
    return _error('Unknown message; the only one accepted is {"type": "ping"}.')


def _error(sentence: str) -> dict[str, str]:
    return {"type": "error", "error": sentence}


class _JsonSocket(AsyncWebsocketConsumer):
    user_id: int | None = None
    presence: Presence  # set by logged_in(), the first step of every connect()
    accepted = False
    _cleaned = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        except (RedisError, OSError) as exc:
            # The channel layer lost Redis under us: close as a server error (the client
            # reconnects), not as an unhandled exception, and still run the disconnect path.
            log.warning("Closing a socket: the channel layer failed (%s)", exc)
            if hasattr(self, "base_send"):
                await self.base_send({"type": "websocket.close", "code": CLOSE_SERVER_ERROR})
        finally:
            await self.cleanup()

    async def cleanup(self) -> None:
        """Once, however the socket ended: forget it here, then in presence and its groups."""
        if self._cleaned:
            return
        self._cleaned = True
        if hasattr(self, "presence"):
            self.presence.sockets.discard(self, self.user_id)
            await self.forget()

    async def forget(self) -> None:
        """What a subclass undoes at the end (presence counts, group memberships)."""

    async def discard_group(self, group: str) -> None:
        try:
            await self.channel_layer.group_discard(group, self.channel_name)
        except (RedisError, OSError) as exc:  # the membership expires with the group
            log.info("Could not leave group %s: %s", group, exc)

    async def refuse(self, code: int) -> None:
        await self.accept()
        await self.close(code)

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        await super().accept(subprotocol, headers)
        self.accepted = True

    async def disconnect(self, code: int) -> None:
        await self.cleanup()

    async def restarting(self) -> None:
        if self.accepted:
            await self.send_json(RESTARTING)
        await self.close(CLOSE_RESTARTING)

    async def resync(self) -> None:
        """Only presence sockets hear the bus (see PresenceConsumer)."""

    async def send_json(self, data: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(data))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send_json(answer(text_data))

    def fresh(self, message: dict[str, Any]) -> bool:
        """False for an event overtaken by a newer one about the same thing (sent elsewhere)."""
        key, seq = message.get("key"), message.get("seq", 0)
        if not key or not seq:
            return True
        if seq <= self.seen.get(key, 0):
            return False
        self.seen[key] = seq
        return True

    def logged_in(self) -> int | None:
        user = self.scope.get("user")
        self.seen: dict[str, int] = {}
        self.presence = self.scope["services"].presence
        return user.pk if user is not None and user.is_authenticated else None


class PresenceConsumer(_JsonSocket):
    opened = False

    async def connect(self) -> None:
        uid = self.logged_in()
        if uid is None:
            return await self.refuse(CLOSE_UNAUTHENTICATED)
        self.user_id, self.friends = uid, set[int]()
        self._held: list[dict[str, Any]] | None = []  # bus events until the snapshot is sent
        # Listen before reading the snapshot, so no change falls between the two.
        self.presence.sockets.add(self, uid)
        try:
            await self.channel_layer.group_add(user_group(uid), self.channel_name)
            await self.presence.socket_opened(uid)
            self.opened = True
            # Counted first, then checked: sockets opened at the same moment cannot all slip in.
            if await self.presence.socket_count(uid) > settings.MAX_PRESENCE_SOCKETS:
                log.info("User %s has too many presence sockets; closing a new one (4429)", uid)
                return await self.refuse(CLOSE_TOO_MANY)
            snapshot = await self.presence.snapshot(uid)
        except STORE_ERRORS:
            log.exception("Presence store unreachable; closing user %s's socket", uid)
            return await self.refuse(CLOSE_SERVER_ERROR)
        self.friends = snapshot.friend_ids
        await self.accept()
        await self.send_json(snapshot.payload)
        held, self._held = self._held, None
        for message in held or ():
            await self.deliver(message)

    async def forget(self) -> None:
        if self.user_id is None:
            return
        if self.opened:  # counted closed first: leaving the group may fail while Redis is down
            self.opened = False
            await self.presence.socket_closed(self.user_id)
        await self.discard_group(user_group(self.user_id))

    async def deliver(self, message: dict[str, Any]) -> None:
        """A bus event addressed to this user (`streams.presence.bus`)."""
        if self._held is not None:
            self._held.append(message)
        elif "forward" in message:
            await self.send_json(message["forward"])
        else:
            about = message["about"]
            if (about == self.user_id or about in self.friends) and self.fresh(message):
                await self.send_json(message["event"])

    async def resync(self) -> None:
        """Bus events may have been missed (its subscription broke): a fresh snapshot replaces
        whatever the page has; if even that cannot be read, the client reconnects."""
        if not self.accepted or self.user_id is None:
            return
        try:
            snapshot = await self.presence.snapshot(self.user_id)
        except STORE_ERRORS:
            return await self.close(CLOSE_SERVER_ERROR)
        self.friends = snapshot.friend_ids
        await self.send_json(snapshot.payload)

    async def presence_forward(self, message: dict[str, Any]) -> None:
        await self.send_json(message["event"])

    async def friend_added(self, message: dict[str, Any]) -> None:
        self.friends.add(message["friend_id"])
        try:
            entry = await self.presence.friend_entry(message["friend_id"], message["username"])
        except STORE_ERRORS:
            entry = {"id": message["friend_id"], "username": message["username"]}
        await self.send_json({"type": "friend_added", **entry})

    async def friend_removed(self, message: dict[str, Any]) -> None:
        self.friends.discard(message["friend_id"])
        await self.send_json(
            {"type": "friend_removed", "id": message["friend_id"], "username": message["username"]}
        )


class StreamConsumer(_JsonSocket):
    owner_id: int | None = None

    async def connect(self) -> None:
        uid = self.logged_in()
        if uid is None:
            return await self.refuse(CLOSE_UNAUTHENTICATED)
        try:
            owner = await database_sync_to_async(find_user)(self.scope["url_route"]["kwargs"]["username"])
        except NotFound:
            return await self.refuse(CLOSE_NOT_FOUND)
        self.user_id, self.owner_id = uid, owner.pk
        self.presence.sockets.add(self)
        try:
            # Join before checking friendship: an unfriending after the check still reaches us.
            await self.channel_layer.group_add(stream_group(owner.pk), self.channel_name)
            if owner.pk != uid and not await database_sync_to_async(are_friends)(uid, owner.pk):
                return await self.refuse(CLOSE_FORBIDDEN)
            state = await self.presence.stream_state(owner.pk, owner.username)
        except STORE_ERRORS:
            log.exception("Presence store unreachable; closing a socket on %s's page", owner.username)
            return await self.refuse(CLOSE_SERVER_ERROR)
        await self.accept()
        await self.send_json(state)

    async def forget(self) -> None:
        if self.owner_id is not None:
            await self.discard_group(stream_group(self.owner_id))

    async def stream_event(self, message: dict[str, Any]) -> None:
        if self.fresh(message):
            await self.send_json(message["event"])

    async def stream_viewer_removed(self, message: dict[str, Any]) -> None:
        if message["viewer_id"] == self.user_id:
            await self.close(CLOSE_FORBIDDEN)


class UnknownPath(AsyncWebsocketConsumer):
    """Any other WebSocket path: closed with 4404 (a refused handshake would show as 1006)."""

    async def connect(self) -> None:
        log.info("WebSocket to unknown path %r closed (4404)", self.scope.get("path", "")[:100])
        await self.accept()
        await self.close(CLOSE_NOT_FOUND)
