"""Control requests between app processes over the channel layer: one channel per process.

(Also notices: a "control.notice" message, typically sent to a group of channels, runs the
handler the same way and is answered to nobody.)

A request that reaches a process which does not own the stream (stop, settings, the unload
beacon) is sent to the owner's channel with a reply channel and an id; the owner runs it and
sends back the status and body it would have answered itself. The caller waits `within`
seconds: a dead or stuck owner is an `Unavailable`, never a hang. A request to this process's
own channel skips the layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fc25_denoise.errors import BadRequest, Conflict, DomainError, Forbidden, NotFound, Unavailable
from streams.live.tasks import detached

log = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
LAYER_ERRORS: tuple[type[BaseException], ...] = (OSError, ConnectionError)
try:
    from redis.exceptions import RedisError

    LAYER_ERRORS = (*LAYER_ERRORS, RedisError)
except ImportError:  # redis is optional without REDIS_URL
    pass
_BY_STATUS: dict[int, type[DomainError]] = {
    400: BadRequest,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    503: Unavailable,
}


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]

    def result(self) -> dict[str, Any]:
        """The owner's body, or the owner's error raised here as the same DomainError."""
        if self.status < 400:
            return self.body
        error = _BY_STATUS.get(self.status, DomainError)(str(self.body.get("error") or "The request failed."))
        error.status_code = self.status
        raise error


def owner_group(user_id: int) -> str:
    """The group of the control channel of whichever process owns the user's live stream."""
    return f"live-owner.{user_id}"


def channel_name(process: str) -> str:
    """The control channel of a process id (channel names allow letters, digits, - _ .)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in process)
    return f"rd-control.{safe}"[:99]


class ControlBus:
    """This process's control channel: serves requests with `handler`, sends requests to others."""

    def __init__(self, layer: Any, channel: str, handler: Handler) -> None:
        self.layer = layer
        self.channel = channel
        self._handler = handler
        self._waiting: dict[str, asyncio.Future[Reply]] = {}
        self._serving: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = detached(self._serve(), f"control-{self.channel}")

    async def aclose(self) -> None:
        tasks = [t for t in (self._task, *self._serving) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(Unavailable("This server process is shutting down."))

    async def call(self, channel: str, action: str, args: dict[str, Any], within: float) -> Reply:
        """Run `action` on the process listening on `channel`; its reply (status and body)."""
        if channel == self.channel:
            return await self._run(action, args)
        request_id = uuid.uuid4().hex
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        message = {
            "type": "control.request",
            "id": request_id,
            "reply_to": self.channel,
            "action": action,
            "args": args,
        }
        try:
            await self.layer.send(channel, message)
            async with asyncio.timeout(within):
                return await future
        except TimeoutError as exc:
            raise Unavailable("The server process that holds this stream did not answer; try again.") from exc
        except LAYER_ERRORS as exc:
            raise Unavailable("The server processes cannot reach each other right now; try again.") from exc
        finally:
            self._waiting.pop(request_id, None)

    async def _run(self, action: str, args: dict[str, Any]) -> Reply:
        try:
            return Reply(200, await self._handler(action, args))
        except DomainError as exc:
            return Reply(exc.status_code, {"error": str(exc)})

    async def _serve(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except LAYER_ERRORS:
                log.warning("Control channel %s: receive failed; retrying", self.channel, exc_info=True)
                await asyncio.sleep(1.0)
                continue
            kind = message.get("type")
            if kind == "control.reply":
                future = self._waiting.get(message.get("id", ""))
                if future is not None and not future.done():
                    future.set_result(Reply(int(message["status"]), dict(message["body"])))
            elif kind in ("control.request", "control.notice"):
                task = detached(self._answer(message), f"control-answer-{message.get('action')}")
                self._serving.add(task)
                task.add_done_callback(self._serving.discard)

    async def _answer(self, message: dict[str, Any]) -> None:
        reply = await self._run(str(message.get("action")), dict(message.get("args") or {}))
        if message.get("type") == "control.notice":  # sent to a group: nobody waits for a reply
            if reply.status >= 400:
                log.warning("Control notice %s failed: %s", message.get("action"), reply.body.get("error"))
            return
        with contextlib.suppress(*LAYER_ERRORS):
            await self.layer.send(
                message["reply_to"],
                {"type": "control.reply", "id": message["id"], "status": reply.status, "body": reply.body},
            )
