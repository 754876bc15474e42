"""This process among the others: its control channel, the owner records of the streams it owns
(with REDIS_URL), and, with JANUS_URL, their Janus relays.

As the registry's `SessionHooks` it opens a stream's relay before the recording exists (Janus
down: the start is refused, nothing is left), records the owner once the stream is live (the
control channel to forward to, the mountpoint listeners go to) and undoes both at the end.
Its control channel also joins the group `live-owner.<uid>` of each stream it owns, where
friendship ends arrive (`streams.cluster.receivers`). When presence reaps a dead process,
`reaped` takes over that process's owner records: the mountpoints are destroyed (Janus hangs
up their viewers) and the Janus listener records dropped; presence itself ends the streams
and finishes their recordings.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError
from redis.exceptions import RedisError

from streams.cluster.control import LAYER_ERRORS, ControlBus, Handler, Reply, channel_name, owner_group
from streams.cluster.owners import Owner, Owners
from streams.events import StreamEvents, tell
from streams.live.session import LiveSession
from streams.live.tasks import TaskSet
from streams.presence.publisher import stream_group
from streams.presence.redis_store import RedisStore
from streams.presence.service import Presence
from streams.presence.store import Reaped
from streams.sfu.fanout import JanusFanout
from streams.sfu.relay import JanusRelay
from users.models import User

log = logging.getLogger(__name__)

FORWARD_WITHIN_S = 5.0  # a stop drains the engine and closes the files: up to ~2.5 s
STORE_ERRORS = (RedisError, OSError)


async def _username(uid: int) -> str:
    return (await User.objects.filter(pk=uid).values_list("username", flat=True).afirst()) or ""


class ClusterNode:
    def __init__(
        self,
        *,
        layer: Any,
        owners: Owners | None,
        process: str,
        events: StreamEvents,
        janus: JanusFanout | None,
    ) -> None:
        self.layer = layer
        self.owners = owners
        self.process = process
        self.channel = channel_name(process)
        self.events = events
        self.janus = janus
        self.bus: ControlBus | None = None
        self._relays: dict[LiveSession, JanusRelay] = {}
        self._tasks = TaskSet("cluster-node")

    @classmethod
    def for_process(cls, presence: Presence) -> ClusterNode:
        """The node of this process: Redis's owner records when presence is on Redis, Janus
        when JANUS_URL is set, the channel layer's process channel always."""
        store = presence.store
        if isinstance(store, RedisStore):
            owners: Owners | None = Owners(store.redis, store.prefix)
            process = store.pid
        else:
            owners, process = None, f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        janus = None
        if settings.JANUS_URL and isinstance(store, RedisStore):
            janus = JanusFanout.from_settings(store.redis, store.prefix)
        return cls(layer=get_channel_layer(), owners=owners, process=process, events=presence, janus=janus)

    async def serve(self, handler: Handler) -> None:
        """Start answering control requests with `handler` (the router's)."""
        self.bus = ControlBus(self.layer, self.channel, handler)
        await self.bus.start()

    async def aclose(self) -> None:
        await self._tasks.cancel_all()
        if self.bus is not None:
            await self.bus.aclose()
        if self.janus is not None:
            await self.janus.aclose()

    # -- the registry's SessionHooks -----------------------------------------------------------

    async def opening(self, session: LiveSession) -> None:
        if self.janus is None:
            return
        uid, session_id = session.user_id, session.session_id

        def viewers(count: int) -> None:
            self._tasks.spawn(tell(self.events.listeners_changed(uid, count)), "janus-viewers")

        def moved(mountpoint: int | None) -> None:
            self._tasks.spawn(self._moved(uid, session_id, mountpoint), "janus-moved")

        relay = await self.janus.open_relay(session.hub, f"user-{uid}", viewers, moved)
        self._relays[session] = relay
        session.relay = relay

    async def _moved(self, uid: int, session_id: str, mountpoint: int | None) -> None:
        """Janus lost the stream's mountpoint (None) or gave it a new one: record where listeners
        go now, and tell the stream's page viewers (their listening stopped, or may start again)."""
        try:
            if self.owners is not None:
                await self.owners.set_mountpoint(uid, session_id, mountpoint)
            event = {
                "type": "listening",
                "username": await _username(uid),
                "available": mountpoint is not None,
            }
            await self.layer.group_send(stream_group(uid), {"type": "stream.event", "event": event})
        except (*STORE_ERRORS, *LAYER_ERRORS, DatabaseError) as exc:
            log.warning("Could not record or announce user %s's new mountpoint: %s", uid, exc)

    async def live(self, session: LiveSession) -> None:
        relay = self._relays.get(session)
        mountpoint = relay.mountpoint.id if relay is not None and relay.mountpoint else None
        owner = Owner(self.channel, session.session_id, self.process, mountpoint)
        try:
            if self.owners is not None:
                await self.owners.claim(session.user_id, owner)
            await self.layer.group_add(owner_group(session.user_id), self.channel)
        except (*STORE_ERRORS, *LAYER_ERRORS) as exc:  # local control still works; remote will not
            log.warning("Could not record the owner of user %s's stream: %s", session.user_id, exc)

    async def ended(self, session: LiveSession) -> None:
        relay = self._relays.pop(session, None)
        if relay is not None:
            await relay.aclose()
        try:
            if self.owners is not None:
                await self.owners.release(session.user_id, session.session_id)
            await self.layer.group_discard(owner_group(session.user_id), self.channel)
            if self.janus is not None:
                await self.janus.listeners.forget_stream(session.user_id)
        except (*STORE_ERRORS, *LAYER_ERRORS) as exc:
            log.warning("Could not clear the owner record of user %s's stream: %s", session.user_id, exc)

    # -- other processes ----------------------------------------------------------------------

    async def owner_of(self, uid: int) -> Owner | None:
        if self.owners is None:  # one process: nobody else owns anything
            return None
        try:
            return await self.owners.get(uid)
        except STORE_ERRORS:
            log.warning("Could not read the owner of user %s's stream", uid, exc_info=True)
            return None

    async def forward(self, owner: Owner, action: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run `action` on the owner process: its result, or its error raised here."""
        if self.bus is None:
            raise RuntimeError("the control channel is not being served")
        reply: Reply = await self.bus.call(owner.channel, action, args, within=FORWARD_WITHIN_S)
        return reply.result()

    async def reaped(self, reaped: Reaped) -> None:
        """Presence reaped dead processes (and ended their streams): clean up after them."""
        if self.owners is None:
            return
        dead = set(reaped.processes)
        for uid, _seq in reaped.ended:
            for process in dead:
                try:
                    owner = await self.owners.take(uid, process)
                except STORE_ERRORS as exc:
                    log.warning("Could not take over user %s's owner record: %s", uid, exc)
                    continue
                if owner is None:
                    continue
                log.info("Stream of user %s lost its owner %s; its Janus mountpoint goes", uid, process)
                if self.janus is not None:
                    if owner.mountpoint is not None:
                        await self.janus.destroy(owner.mountpoint)
                    await tell(self.janus.listeners.forget_stream(uid))
                await tell(self.events.listeners_changed(uid, 0))
