"""Janus's Streaming plugin as the app uses it: RTP mountpoints (one per live stream) and viewers.

Every process holds one `Streaming` with its own Janus session, opened on first use and again
after a loss. Mountpoints belong to the plugin, not to a session: any process can destroy one
or count its viewers. A viewer handle lives on the session of the process that created it, but
Janus addresses it by (session id, handle id), so `start` and `hang_up` work from any process
given its `ViewerRef`; the events of the handle reach only the creating process.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import httpx

from streams.sfu.janus import (
    KEEPALIVE_S,
    EventCallback,
    JanusError,
    JanusSession,
    JanusUnavailable,
    PluginReply,
    post,
)

STREAMING = "janus.plugin.streaming"
OPUS_PT = 111
AUDIO_MID = "a"
NO_SUCH_MOUNTPOINT = 455


@dataclass(frozen=True)
class Mountpoint:
    id: int
    rtp_port: int  # where Janus takes this stream's RTP (on the Janus host)


@dataclass(frozen=True)
class ViewerRef:
    """A viewer handle, as any process can name it to Janus."""

    session_id: int
    handle_id: int

    def as_text(self) -> str:
        return f"{self.session_id}:{self.handle_id}"

    @classmethod
    def from_text(cls, text: str) -> ViewerRef:
        session, _, handle = text.partition(":")
        return cls(int(session), int(handle))


class Streaming:
    def __init__(
        self,
        url: str,
        api_secret: str,
        admin_key: str,
        *,
        http: httpx.AsyncClient | None = None,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        self.url = url.rstrip("/")
        self._keepalive_s = keepalive_s
        self._secret = api_secret
        self._admin_key = admin_key
        # Connections: the long poll holds one; requests of many concurrent listeners the rest.
        self._http = http or httpx.AsyncClient(
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=10)
        )
        self._session: JanusSession | None = None
        self._admin: int | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def session(self) -> JanusSession:
        """This process's session, reopened if Janus lost it; JanusUnavailable when Janus is down."""
        async with self._lock:
            if self._closed:
                raise JanusUnavailable("the Janus client is closed")
            if self._session is None or self._session.lost.is_set():
                self._session = await JanusSession.open(self.url, self._secret, self._http, self._keepalive_s)
                self._admin = await self._session.attach(STREAMING)
            return self._session

    async def _admin_message(self, body: dict[str, Any]) -> PluginReply:
        session = await self.session()
        admin = self._admin or await session.attach(STREAMING)
        return await session.message(admin, {**body, "admin_key": self._admin_key})

    # -- mountpoints (the owner of a stream) ------------------------------------------------

    async def create_mountpoint(self, description: str) -> Mountpoint:
        reply = await self._admin_message(
            {
                "request": "create",
                "type": "rtp",
                "description": description,
                "is_private": True,
                "permanent": False,
                "media": [{"type": "audio", "mid": AUDIO_MID, "port": 0, "pt": OPUS_PT, "codec": "opus"}],
            }
        )
        stream = reply.data["stream"]
        return Mountpoint(int(stream["id"]), int(stream["ports"][0]["port"]))

    async def destroy_mountpoint(self, mountpoint_id: int) -> None:
        """Destroy it (Janus hangs up its viewers); one already gone is fine."""
        try:
            await self._admin_message({"request": "destroy", "id": mountpoint_id})
        except JanusError as exc:
            if exc.code != NO_SUCH_MOUNTPOINT:
                raise

    async def viewer_count(self, mountpoint_id: int) -> int:
        reply = await self._admin_message({"request": "info", "id": mountpoint_id})
        return int(reply.data["info"].get("viewers", 0))

    # -- viewers (any process) --------------------------------------------------------------

    async def watch(self, mountpoint_id: int, on_event: EventCallback) -> tuple[ViewerRef, dict[str, Any]]:
        """A new viewer handle on this process's session watching the mountpoint: Janus's offer."""
        session = await self.session()
        handle_id = await session.attach(STREAMING, on_event)
        ref = ViewerRef(session.session_id, handle_id)
        try:
            reply = await session.message_event(handle_id, {"request": "watch", "id": mountpoint_id})
            if not reply.jsep or reply.jsep.get("type") != "offer":
                raise JanusError("Janus answered watch without an offer")
        except BaseException:  # any failure, cancellation included: undo, then re-raise
            await session.detach(handle_id)
            raise
        return ref, reply.jsep

    async def start(self, ref: ViewerRef, answer_sdp: str) -> None:
        """Hand the viewer's answer to Janus (the handle may belong to another process)."""
        reply = await post(
            self._http,
            f"{self.url}/{ref.session_id}/{ref.handle_id}",
            {"janus": "message", "body": {"request": "start"}, "jsep": {"type": "answer", "sdp": answer_sdp}},
            self._secret,
        )
        if reply.get("janus") not in ("ack", "success"):
            raise JanusError(f"Janus answered start with {reply.get('janus')!r}")

    async def hang_up(self, ref: ViewerRef) -> None:
        """Detach a viewer handle from any process; one already gone is fine."""
        session = self._session
        if session is not None and session.session_id == ref.session_id:
            await session.detach(ref.handle_id)
            return
        with contextlib.suppress(JanusError):
            await post(
                self._http, f"{self.url}/{ref.session_id}/{ref.handle_id}", {"janus": "detach"}, self._secret
            )

    def forget(self, ref: ViewerRef) -> None:
        """Stop delivering events of a handle Janus already detached."""
        if self._session is not None and self._session.session_id == ref.session_id:
            self._session.forget(ref.handle_id)

    async def aclose(self) -> None:
        async with self._lock:
            self._closed = True
            if self._session is not None:
                await self._session.aclose()
                self._session = None
        await self._http.aclose()
