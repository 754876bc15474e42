"""One Janus session over Janus's HTTP API (plain JSON over HTTP; https://janus.conf.meetecho.com/docs/rest).

A session is created with `create`, kept alive with a `keepalive` request well inside Janus's
session timeout (60 s), and read by one long-poll task that receives every asynchronous event:
the answers to asynchronous plugin messages (matched by transaction) and the events of each
handle (webrtcup, hangup, detached, plugin events), delivered to that handle's callback.
When the session is lost (Janus restarted or unreachable) `lost` is set and every handle's
callback gets a {"janus": "session_lost"} event, so its owner can tell its users.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger(__name__)

KEEPALIVE_S = 25.0  # Janus drops a session after session_timeout (60 s) without a request
REQUEST_TIMEOUT_S = 10.0
POLL_WAIT_S = 30.0  # Janus answers a long poll after 30 s without events
POLL_EVENTS = 20
NO_SUCH_SESSION = 458
NO_SUCH_HANDLE = 459

Event = dict[str, Any]
EventCallback = Callable[[Event], None]


class JanusError(Exception):
    """Janus refused a request (its error code and reason), or a plugin did."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class JanusUnavailable(JanusError):
    """Janus could not be reached, answered garbage, or the session is gone."""


@dataclass(frozen=True)
class PluginReply:
    data: dict[str, Any]
    jsep: dict[str, Any] | None


def new_transaction() -> str:
    return secrets.token_hex(8)


class JanusSession:
    """Use `await JanusSession.open(url, secret, http)`; `aclose()` destroys it."""

    def __init__(
        self,
        url: str,
        api_secret: str,
        http: httpx.AsyncClient,
        session_id: int,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        self.url = url.rstrip("/")
        self._keepalive_s = keepalive_s
        self.session_id = session_id
        self._secret = api_secret
        self._http = http
        self._waiting: dict[str, asyncio.Future[Event]] = {}
        self._handles: dict[int, EventCallback] = {}
        self.lost = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._poll(), name=f"janus-poll-{session_id}"),
            asyncio.create_task(self._keepalive(), name=f"janus-keepalive-{session_id}"),
        ]

    @classmethod
    async def open(
        cls, url: str, api_secret: str, http: httpx.AsyncClient, keepalive_s: float = KEEPALIVE_S
    ) -> JanusSession:
        reply = await post(http, url.rstrip("/"), {"janus": "create"}, api_secret)
        return cls(url, api_secret, http, int(reply["data"]["id"]), keepalive_s)

    @property
    def path(self) -> str:
        return f"{self.url}/{self.session_id}"

    # -- requests ----------------------------------------------------------------------------

    async def request(self, body: dict[str, Any], handle_id: int | None = None) -> Event:
        """A synchronous Janus request on this session (or one of its handles)."""
        path = self.path if handle_id is None else f"{self.path}/{handle_id}"
        try:
            return await post(self._http, path, body, self._secret)
        except JanusError as exc:
            if exc.code == NO_SUCH_SESSION:
                self._lose("Janus no longer knows the session")
            raise

    async def attach(self, plugin: str, on_event: EventCallback | None = None) -> int:
        reply = await self.request({"janus": "attach", "plugin": plugin})
        handle_id = int(reply["data"]["id"])
        if on_event is not None:
            self._handles[handle_id] = on_event
        return handle_id

    async def message(
        self, handle_id: int, body: dict[str, Any], jsep: dict[str, Any] | None = None
    ) -> PluginReply:
        """A plugin message answered at once ("success", e.g. the Streaming plugin's create)."""
        request: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            request["jsep"] = jsep
        return _plugin_reply(await self.request(request, handle_id))

    async def message_event(
        self,
        handle_id: int,
        body: dict[str, Any],
        jsep: dict[str, Any] | None = None,
        within: float = REQUEST_TIMEOUT_S,
    ) -> PluginReply:
        """A plugin message answered later by an event ("ack" first, e.g. watch and start)."""
        transaction = new_transaction()
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._waiting[transaction] = future
        request: dict[str, Any] = {"janus": "message", "body": body, "transaction": transaction}
        if jsep is not None:
            request["jsep"] = jsep
        try:
            reply = await self.request(request, handle_id)
            if reply.get("janus") != "ack":
                return _plugin_reply(reply)
            async with asyncio.timeout(within):
                return _plugin_reply(await future)
        except TimeoutError as exc:
            raise JanusUnavailable(f"Janus did not answer {body.get('request')!r} in time") from exc
        finally:
            self._waiting.pop(transaction, None)

    async def detach(self, handle_id: int) -> None:
        """Detach a handle (hanging up its peer connection); a handle already gone is fine."""
        self._handles.pop(handle_id, None)
        with contextlib.suppress(JanusError):
            await self.request({"janus": "detach"}, handle_id)

    def forget(self, handle_id: int) -> None:
        self._handles.pop(handle_id, None)

    # -- lifetime ----------------------------------------------------------------------------

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if not self.lost.is_set():
            with contextlib.suppress(JanusError):
                await post(self._http, self.path, {"janus": "destroy"}, self._secret)
        self._lose("closed")

    def _lose(self, why: str) -> None:
        if self.lost.is_set():
            return
        log.warning("Janus session %s lost: %s", self.session_id, why)
        self.lost.set()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(JanusUnavailable(f"the Janus session was lost ({why})"))
        handles, self._handles = self._handles, {}
        for callback in handles.values():
            callback({"janus": "session_lost", "reason": why})
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self._keepalive_s)
            try:
                await self.request({"janus": "keepalive"})
            except JanusUnavailable as exc:
                log.warning("Janus keepalive of session %s failed: %s", self.session_id, exc)

    async def _poll(self) -> None:
        failures = 0
        while True:
            try:
                response = await self._http.get(
                    self.path,
                    params={"maxev": POLL_EVENTS, "rid": new_transaction(), "apisecret": self._secret},
                    timeout=POLL_WAIT_S + REQUEST_TIMEOUT_S,
                )
                if response.status_code == 404:  # an unknown session: Janus restarted or timed it out
                    self._lose("Janus no longer knows the session")
                    return
                events = response.json()
                failures = 0
            except (httpx.HTTPError, ValueError) as exc:
                failures += 1
                # Janus answers at least every 30 s: a few failures in a row mean it is gone.
                if failures >= 3:
                    self._lose(f"long poll failed: {exc!r}")
                    return
                await asyncio.sleep(0.5 * failures)
                continue
            for event in events if isinstance(events, list) else [events]:
                if not isinstance(event, dict):
                    continue
                if event.get("janus") == "error" and event.get("error", {}).get("code") == NO_SUCH_SESSION:
                    self._lose("Janus no longer knows the session")
                    return
                self._dispatch(event)

    def _dispatch(self, event: Event) -> None:
        future = self._waiting.get(event.get("transaction") or "")
        if future is not None and event.get("janus") == "event" and not future.done():
            future.set_result(event)
            return
        sender = event.get("sender")
        callback = self._handles.get(sender) if isinstance(sender, int) else None
        if callback is not None:
            if event.get("janus") == "detached":
                self._handles.pop(sender, None)  # type: ignore[arg-type]
            callback(event)


async def post(http: httpx.AsyncClient, url: str, body: dict[str, Any], api_secret: str) -> Event:
    """POST one Janus request; the reply, or JanusError / JanusUnavailable."""
    payload = {"transaction": new_transaction(), **body, "apisecret": api_secret}
    try:
        response = await http.post(url, json=payload, timeout=REQUEST_TIMEOUT_S)
        reply = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise JanusUnavailable(f"Janus at {url} could not be reached: {exc!r}") from exc
    if not isinstance(reply, dict):
        raise JanusUnavailable(f"Janus answered {reply!r}")
    if reply.get("janus") == "error":
        error = reply.get("error") or {}
        code = error.get("code")
        cls = JanusUnavailable if code == NO_SUCH_SESSION else JanusError
        raise cls(f"Janus refused {body.get('janus')!r}: {error.get('reason')}", code)
    return reply


def _plugin_reply(reply: Event) -> PluginReply:
    data = (reply.get("plugindata") or {}).get("data")
    if not isinstance(data, dict):
        raise JanusError(f"Janus answered without plugin data: {reply.get('janus')!r}")
    if "error" in data or "error_code" in data:
        raise JanusError(f"the plugin refused: {data.get('error')}", data.get("error_code"))
    return PluginReply(data, reply.get("jsep"))
