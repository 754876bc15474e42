"""Listeners served by Janus: the viewer handles, created by whichever process took the request.

A listen request makes a viewer handle on this process's Janus session and returns Janus's
offer with a listener id; the answer (and a later leave) may reach any process, which finds
the handle through Redis. Redis holds, per listener id, the handle, the stream's owner and the
listener; per stream, its listener ids. The process that made a handle gets its events: once
Janus hangs it up (the browser left, the mountpoint was destroyed at the stream's end, Janus
was lost) the records go. An unanswered offer is hung up after `answer_within_s`.
An unfriending cuts the ex-friend's handles on the other's stream from any process (`cut`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from fc25_denoise.errors import NotFound, Unavailable
from streams.live.tasks import detached
from streams.sfu.janus import JanusError
from streams.sfu.streaming import NO_SUCH_MOUNTPOINT, Streaming, ViewerRef

log = logging.getLogger(__name__)

ANSWER_WITHIN_S = 30.0
RECORD_TTL_S = 24 * 3600  # a backstop only: records go when their handle is hung up
_GONE = ("hangup", "detached", "session_lost")


@dataclass(frozen=True)
class Offered:
    listener_id: str
    sdp: str


class JanusListeners:
    def __init__(
        self,
        streaming: Streaming,
        redis: aioredis.Redis,
        prefix: str,
        *,
        answer_within_s: float = ANSWER_WITHIN_S,
        on_gone: Callable[[str], None] | None = None,
    ) -> None:
        self._streaming = streaming
        self._redis = redis
        self._prefix = prefix
        self._answer_within_s = answer_within_s
        self._on_gone = on_gone
        self._mine: dict[str, ViewerRef] = {}
        self._deadlines: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _listener_key(self, listener_id: str) -> str:
        return f"{self._prefix}:sfu:listener:{listener_id}"

    def _stream_key(self, owner_id: int) -> str:
        return f"{self._prefix}:sfu:stream:{owner_id}"

    # -- the listen flow -----------------------------------------------------------------------

    async def offer(self, owner_id: int, user_id: int, mountpoint_id: int) -> Offered:
        """A viewer handle watching the owner's mountpoint: Janus's offer for the browser."""
        listener_id = secrets.token_urlsafe(16)
        try:
            ref, jsep = await self._streaming.watch(
                mountpoint_id, lambda event: self._event(listener_id, event)
            )
        except JanusError as exc:
            if exc.code == NO_SUCH_MOUNTPOINT:
                raise Unavailable(
                    "The stream is moving to a new media server; try again in a moment."
                ) from exc
            raise Unavailable("The media server does not answer right now; try again.") from exc
        self._mine[listener_id] = ref
        record = {"ref": ref.as_text(), "owner": owner_id, "user": user_id, "state": "offered"}
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(self._listener_key(listener_id), mapping=record)
                pipe.expire(self._listener_key(listener_id), RECORD_TTL_S)
                pipe.sadd(self._stream_key(owner_id), listener_id)
                pipe.expire(self._stream_key(owner_id), RECORD_TTL_S)
                await pipe.execute()
        except RedisError as exc:
            await self._hang_up(listener_id, ref)
            raise Unavailable("Listening is unavailable right now; try again.") from exc
        self._deadlines[listener_id] = self._spawn(self._expire_offer(listener_id))
        return Offered(listener_id, jsep["sdp"])

    async def _record(self, listener_id: str, user_id: int) -> dict[str, Any]:
        raw = await self._redis.hgetall(self._listener_key(listener_id))
        if not raw or int(raw[b"user"]) != user_id:
            raise NotFound("No such listener (it may have ended); start listening again.")
        return {key.decode(): value.decode() for key, value in raw.items()}

    async def answer(self, listener_id: str, user_id: int, sdp: str) -> int:
        """Hand the browser's answer to Janus; returns the stream owner's id."""
        record = await self._record(listener_id, user_id)
        try:
            await self._streaming.start(ViewerRef.from_text(record["ref"]), sdp)
        except JanusError as exc:
            raise Unavailable("The media server did not take the answer; start listening again.") from exc
        with contextlib.suppress(RedisError):
            await self._redis.hset(self._listener_key(listener_id), "state", "answered")
        return int(record["owner"])

    async def leave(self, listener_id: str, user_id: int) -> None:
        record = await self._record(listener_id, user_id)
        await self._hang_up(listener_id, ViewerRef.from_text(record["ref"]), int(record["owner"]))

    async def cut(self, owner_id: int, user_id: int) -> int:
        """Hang up every handle of `user_id` on `owner_id`'s stream, from any process."""
        cut = 0
        for raw_id in await self._redis.smembers(self._stream_key(owner_id)):
            listener_id = raw_id.decode()
            raw = await self._redis.hgetall(self._listener_key(listener_id))
            if not raw:
                await self._redis.srem(self._stream_key(owner_id), listener_id)
            elif int(raw[b"user"]) == user_id:
                await self._hang_up(listener_id, ViewerRef.from_text(raw[b"ref"].decode()), owner_id)
                cut += 1
        return cut

    async def listening(self, owner_id: int) -> list[int]:
        """Who listens to the owner's stream now (one entry per connected handle)."""
        users = []
        for raw_id in await self._redis.smembers(self._stream_key(owner_id)):
            raw = await self._redis.hgetall(self._listener_key(raw_id.decode()))
            if raw and raw.get(b"state") == b"connected":
                users.append(int(raw[b"user"]))
        return sorted(users)

    async def forget_stream(self, owner_id: int) -> None:
        """The stream ended (its mountpoint is destroyed): drop what its dead holders left."""
        ids = [raw.decode() for raw in await self._redis.smembers(self._stream_key(owner_id))]
        await self._redis.delete(self._stream_key(owner_id), *(self._listener_key(i) for i in ids))

    # -- events of this process's handles ----------------------------------------------------

    def _event(self, listener_id: str, event: dict[str, Any]) -> None:
        kind = event.get("janus")
        if kind == "webrtcup":
            deadline = self._deadlines.pop(listener_id, None)
            if deadline is not None:
                deadline.cancel()
            self._spawn(self._mark_connected(listener_id))
        elif kind in _GONE and listener_id in self._mine:
            self._spawn(self._hang_up(listener_id, self._mine[listener_id]))

    async def _mark_connected(self, listener_id: str) -> None:
        with contextlib.suppress(RedisError):
            if await self._redis.exists(self._listener_key(listener_id)):
                await self._redis.hset(self._listener_key(listener_id), "state", "connected")

    async def _expire_offer(self, listener_id: str) -> None:
        await asyncio.sleep(self._answer_within_s)
        self._deadlines.pop(listener_id, None)
        ref = self._mine.get(listener_id)
        if ref is not None:
            log.info("Listener %s never connected; hanging up its Janus handle", listener_id)
            await self._hang_up(listener_id, ref)

    async def _hang_up(self, listener_id: str, ref: ViewerRef, owner_id: int | None = None) -> None:
        """Detach the handle (from any process) and drop its records; idempotent."""
        mine = self._mine.pop(listener_id, None) is not None
        deadline = self._deadlines.pop(listener_id, None)
        if deadline is not None and deadline is not asyncio.current_task():
            deadline.cancel()
        await self._streaming.hang_up(ref)
        with contextlib.suppress(RedisError):
            if owner_id is None:
                owner = await self._redis.hget(self._listener_key(listener_id), "owner")
                owner_id = int(owner) if owner else None
            await self._redis.delete(self._listener_key(listener_id))
            if owner_id is not None:
                await self._redis.srem(self._stream_key(owner_id), listener_id)
        if mine and self._on_gone is not None:
            self._on_gone(listener_id)

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task = detached(coro, "janus-listeners")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def aclose(self) -> None:
        """Shutdown: hang up this process's handles (Janus would drop them with the session)."""
        await asyncio.gather(
            *(self._hang_up(lid, ref) for lid, ref in list(self._mine.items())), return_exceptions=True
        )
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
