"""Where each call of the live API runs. The views call this, never the registry directly.

A stream lives in its owner process (the one that took the start). A call about a stream this
process owns goes to the local `StreamRegistry`; a call about a stream another process owns
(with REDIS_URL: the owner's record in Redis) is forwarded to it over the control channel and
answers with the owner's result. Listeners: with JANUS_URL any process makes the listener's
Janus handle on the stream's mountpoint; without, the owner serves them from its own hub (a
listen reaching another process is forwarded too). Either way the server offers and the
browser answers: listen -> {listener_id, offer}, answer, leave.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from fc25_denoise.errors import BadRequest, NotFound, Unavailable
from streams.cluster.node import ClusterNode
from streams.cluster.owners import Owner
from streams.live import state as live_state
from streams.live.registry import StreamRegistry
from streams.live.session import LiveSession
from streams.live.webrtc import parse_answer, parse_offer
from streams.sfu.fanout import JanusFanout
from streams.sfu.janus import JanusError
from users.models import User


async def _user(uid: int) -> User:
    try:
        return await User.objects.aget(pk=uid)
    except User.DoesNotExist as exc:  # deleted while the request was on its way
        raise NotFound("That user no longer exists.") from exc


def _listener_id(body: dict[str, Any]) -> str:
    listener_id = body.get("listener_id")
    if not isinstance(listener_id, str) or not 0 < len(listener_id) <= 64:
        raise BadRequest('"listener_id" must be the id the listen request returned.')
    return listener_id


class StreamRouter:
    def __init__(self, registry: StreamRegistry, node: ClusterNode | None = None) -> None:
        self.registry = registry
        self.node = node

    @property
    def janus(self) -> JanusFanout | None:
        return self.node.janus if self.node is not None else None

    def _local(self, uid: int) -> LiveSession | None:
        session = self.registry.session_for(uid)
        return session if session is not None and session.serving else None

    async def _owner(self, uid: int) -> Owner | None:
        """Another process's record of the user's live stream (None: local, or nobody's)."""
        if self.node is None or self.registry.session_for(uid) is not None:
            return None
        owner = await self.node.owner_of(uid)
        return owner if owner is not None and owner.channel != self.node.channel else None

    # -- the broadcaster ---------------------------------------------------------------------

    async def start_stream(self, user: User, body: dict[str, Any]) -> dict[str, Any]:
        session = await self.registry.start_stream(
            user, denoise=body.get("denoise"), atten_lim_db=body.get("atten_lim_db")
        )
        return {"session_id": session.session_id, "started_at": session.started_at.isoformat()}

    async def broadcast(self, user: User, body: dict[str, Any]) -> dict[str, Any]:
        """The broadcaster's offer for its session, wherever that session lives."""
        session_id = body.get("session_id")
        owner = await self._owner(user.pk)
        if owner is None:
            self.registry.broadcast_session(user, session_id)  # whose session, before the SDP
            answer = await self.registry.accept_offer(user, session_id, parse_offer(body, "broadcast"))
            return {"sdp": answer.sdp, "type": answer.type}
        if owner.session_id != session_id:
            self.registry.broadcast_session(user, session_id)  # raises the right refusal
        offer = parse_offer(body, "broadcast")
        args = {"user_id": user.pk, "session_id": session_id, "sdp": offer.description.sdp}
        return await self._forward(owner, "offer", args)

    async def own_stream(self, user: User) -> None:
        """Access of the settings: the user is live here or elsewhere (else NotFound/Conflict)."""
        if self._local(user.pk) is None and await self._owner(user.pk) is None:
            await self.registry.own_session(user)

    async def update_settings(self, user: User, body: dict[str, Any]) -> dict[str, Any]:
        live_state.parse_controls(body.get("denoise"), body.get("atten_lim_db"))  # 400 before forwarding
        owner = await self._owner(user.pk)
        if owner is not None:
            args = {
                "user_id": user.pk,
                "denoise": body.get("denoise"),
                "atten_lim_db": body.get("atten_lim_db"),
            }
            return await self._forward(owner, "settings", args)
        session = await self.registry.update_settings(
            user, denoise=body.get("denoise"), atten_lim_db=body.get("atten_lim_db")
        )
        return {"denoise": session.denoise, "atten_lim_db": session.atten_lim_db}

    async def stop_stream(self, user: User) -> dict[str, Any]:
        owner = await self._owner(user.pk)
        if owner is not None:
            return await self._forward(owner, "stop", {"user_id": user.pk})
        return {"stopped": await self.registry.stop_stream(user)}

    async def status(self, viewer: User, username: str) -> dict[str, Any]:
        owner_user = await database_sync_to_async(live_state.visible_owner)(viewer, username)
        owner = await self._owner(owner_user.pk)
        if owner is not None:
            try:
                return await self._forward(owner, "status", {"viewer_id": viewer.pk, "username": username})
            except Unavailable:
                pass  # what the database knows is still an answer
        return (await self.registry.status(viewer, username)).as_json()

    # -- listeners ---------------------------------------------------------------------------

    async def listen_target(self, listener: User, username: str) -> tuple[User, Owner | None]:
        """Access of the listen calls: a friend's live stream (its owner, if elsewhere)."""
        owner_user = await database_sync_to_async(live_state.visible_owner)(
            listener, username, friends_only=True
        )
        owner = await self._owner(owner_user.pk)
        if owner is None and self._local(owner_user.pk) is None:
            if owner_user.is_streaming:
                raise Unavailable(
                    f"{owner_user.username}'s stream is starting or moving; try again in a moment."
                )
            raise NotFound(f"{owner_user.username} is not live.")
        return owner_user, owner

    async def listen(self, listener: User, username: str) -> dict[str, Any]:
        owner_user, owner = await self.listen_target(listener, username)
        if self.janus is not None:
            mountpoint = await self._mountpoint(owner_user.pk, owner)
            await self._room_for_one_more(mountpoint)
            offered = await self.janus.listeners.offer(owner_user.pk, listener.pk, mountpoint)
            return {"listener_id": offered.listener_id, "type": "offer", "sdp": offered.sdp}
        if owner is not None:
            return await self._forward(owner, "listen", {"owner_id": owner_user.pk, "user_id": listener.pk})
        return await self._listen_here(owner_user.pk, listener.pk)

    async def _mountpoint(self, uid: int, owner: Owner | None) -> int:
        session = self._local(uid)
        relay = session.relay if session is not None else None
        mountpoint = (
            getattr(getattr(relay, "mountpoint", None), "id", None) if owner is None else owner.mountpoint
        )
        if mountpoint is None:
            raise Unavailable("The media server for listeners (Janus) is unavailable; try again in a minute.")
        return int(mountpoint)

    async def _room_for_one_more(self, mountpoint: int) -> None:
        """The same cap as the in-process hub's, counted by Janus (its viewers, answered or not)."""
        cap = settings.MAX_LISTENERS_PER_STREAM
        try:
            viewers = await self.janus.streaming.viewer_count(mountpoint)  # type: ignore[union-attr]
        except JanusError as exc:
            raise Unavailable("The media server for listeners (Janus) does not answer; try again.") from exc
        if viewers >= cap:
            raise Unavailable(f"This stream already has {cap} listeners; try again later.")

    async def answer(self, listener: User, username: str, body: dict[str, Any]) -> dict[str, Any]:
        owner_user, owner = await self.listen_target(listener, username)
        listener_id, sdp = _listener_id(body), parse_answer(body)
        if self.janus is not None:
            if await self.janus.listeners.answer(listener_id, listener.pk, sdp) != owner_user.pk:
                raise NotFound("No such listener of this stream; start listening again.")
        elif owner is not None:
            args = {"owner_id": owner_user.pk, "user_id": listener.pk, "listener_id": listener_id, "sdp": sdp}
            await self._forward(owner, "answer", args)
        else:
            await self._session(owner_user.pk).listeners.answer(listener_id, listener.pk, sdp)
        return {"listening": True}

    async def leave_target(self, listener: User, username: str) -> User:
        """Access of leave: a friend (whose stream may have ended meanwhile)."""
        return await database_sync_to_async(live_state.visible_owner)(listener, username, friends_only=True)

    async def leave(self, listener: User, username: str, body: dict[str, Any]) -> dict[str, Any]:
        """The listener is gone; {"left": false} when it already was (a page leaves after the end)."""
        owner_user = await self.leave_target(listener, username)
        listener_id = _listener_id(body)
        try:
            if self.janus is not None:
                await self.janus.listeners.leave(listener_id, listener.pk)
            elif (owner := await self._owner(owner_user.pk)) is not None:
                args = {"owner_id": owner_user.pk, "user_id": listener.pk, "listener_id": listener_id}
                await self._forward(owner, "leave", args)
            else:
                await self._session(owner_user.pk).listeners.leave(listener_id, listener.pk)
        except NotFound:
            return {"left": False}
        return {"left": True}

    def _session(self, uid: int) -> LiveSession:
        session = self._local(uid)
        if session is None:
            raise NotFound("That stream has ended.")
        return session

    async def _listen_here(self, owner_id: int, user_id: int) -> dict[str, Any]:
        listener_id, sdp = await self._session(owner_id).listeners.offer(user_id)
        return {"listener_id": listener_id, "type": "offer", "sdp": sdp}

    async def _forward(self, owner: Owner, action: str, args: dict[str, Any]) -> dict[str, Any]:
        if self.node is None:  # an Owner comes only from the node: never without one
            raise RuntimeError("forwarding needs this process's cluster node")
        return await self.node.forward(owner, action, args)

    # -- requests forwarded to this process (the owner) ---------------------------------------

    async def handle(self, action: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run a control request from another process, as if it had reached this one."""
        if action == "cut":  # a friendship ended: the ex-friend stops hearing this stream
            await self._cut(int(args["owner_id"]), int(args["viewer_id"]))
            return {}
        if action in ("listen", "answer", "leave"):
            listeners = self._session(int(args["owner_id"])).listeners
            user_id = int(args["user_id"])
            if action == "listen":
                return await self._listen_here(int(args["owner_id"]), user_id)
            if action == "answer":
                await listeners.answer(str(args["listener_id"]), user_id, str(args["sdp"]))
            else:
                await listeners.leave(str(args["listener_id"]), user_id)
            return {}
        if action == "status":
            viewer = await _user(int(args["viewer_id"]))
            return (await self.registry.status(viewer, str(args["username"]))).as_json()
        user = await _user(int(args["user_id"]))
        if action == "offer":
            body = {"session_id": args["session_id"], "sdp": args["sdp"], "type": "offer"}
            self.registry.broadcast_session(user, args["session_id"])
            answer = await self.registry.accept_offer(
                user, args["session_id"], parse_offer(body, "broadcast")
            )
            return {"sdp": answer.sdp, "type": answer.type}
        if action == "settings":
            session = await self.registry.update_settings(
                user, denoise=args.get("denoise"), atten_lim_db=args.get("atten_lim_db")
            )
            return {"denoise": session.denoise, "atten_lim_db": session.atten_lim_db}
        if action == "stop":
            return {"stopped": await self.registry.stop_stream(user)}
        raise BadRequest(f"Unknown control action {action!r}.")

    async def _cut(self, owner_id: int, viewer_id: int) -> None:
        if self.janus is not None:
            await self.janus.listeners.cut(owner_id, viewer_id)
        session = self._local(owner_id)
        if session is not None:
            await session.listeners.cut(viewer_id)
