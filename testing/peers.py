"""aiortc client peers for tests and the live benchmark: a broadcaster and a listener.

`ArrayTrack` plays a mono int16 array in real time (20 ms frames) and can be paused, which a
browser cannot be told to do; `Capture` drains a received track into numpy with arrival times.
`HttpApi` is a minimal cookie + CSRF client for a real server (a daphne subprocess).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import inspect
import json
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
import soundfile as sf
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from channels.db import database_sync_to_async
from django.db import connections
from django.test import AsyncClient

RATE = 48_000
FRAME = 960
TIME_BASE = fractions.Fraction(1, RATE)


def read_wav(path: str) -> np.ndarray:
    """A 48 kHz WAV as mono int16."""
    data, rate = sf.read(path, dtype="int16", always_2d=True)
    if rate != RATE:
        raise ValueError(f"{path} is {rate} Hz; the tests use {RATE} Hz files")
    return np.ascontiguousarray(data[:, 0])


class ArrayTrack(MediaStreamTrack):
    """Plays `samples` (mono int16) once, in real time; then silence, or the end with `end=True`.
    `real_time=False` hands out the frames as fast as they are asked for; `loop=True` repeats;
    `stereo=True` hands out s16 stereo frames, as aiortc's Opus decoder does."""

    kind = "audio"

    def __init__(
        self,
        samples: np.ndarray,
        *,
        end: bool = False,
        real_time: bool = True,
        loop: bool = False,
        stereo: bool = False,
    ) -> None:
        super().__init__()
        self._stereo = stereo
        self._samples = samples
        self._end = end
        self._real_time = real_time
        self._loop = loop
        self._pos = 0
        self._start: float | None = None
        self._sent = 0
        self.playing = asyncio.Event()
        self.playing.set()
        self.started_at: float | None = None  # monotonic time of the first frame

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        await self.playing.wait()
        now = time.monotonic()
        if self._start is None:
            self._start = self.started_at = now
        due = self._start + self._sent * FRAME / RATE
        if not self._real_time:
            pass
        elif due > now:
            await asyncio.sleep(due - now)
        elif now - due > 0.2:  # paused or stalled: continue from now, no burst
            self._start = now - self._sent * FRAME / RATE
        if self._loop and self._pos + FRAME > len(self._samples):
            self._pos = 0
        chunk = self._samples[self._pos : self._pos + FRAME]
        if len(chunk) < FRAME and self._end:
            self.stop()
            raise MediaStreamError
        self._pos += len(chunk)
        mono = np.pad(chunk, (0, FRAME - len(chunk)))
        frame = av.AudioFrame.from_ndarray(
            np.repeat(mono, 2).reshape(1, -1) if self._stereo else mono.reshape(1, -1),
            format="s16",
            layout="stereo" if self._stereo else "mono",
        )
        frame.sample_rate = RATE
        frame.pts = self._sent * FRAME
        frame.time_base = TIME_BASE
        self._sent += 1
        return frame

    @property
    def played_s(self) -> float:
        """Seconds of the array sent so far."""
        return self._pos / RATE

    @property
    def sent_s(self) -> float:
        """Seconds of audio sent so far, trailing silence included."""
        return self._sent * FRAME / RATE


@dataclass
class Capture:
    """What a listener received: each frame's arrival time and (with `keep`) its mono samples."""

    keep: bool = True
    frames: list[np.ndarray] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    count: int = 0
    gaps: int = 0  # arrivals more than GAP_S after the previous one
    task: asyncio.Task[None] | None = None

    GAP_S = 0.1

    def start(self, track: MediaStreamTrack) -> None:
        self.task = asyncio.ensure_future(self._run(track))

    async def _run(self, track: MediaStreamTrack) -> None:
        last = None
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                now = time.monotonic()
                if last is not None and now - last > self.GAP_S:
                    self.gaps += 1
                last = now
                self.count += 1
                if self.keep:
                    data = frame.to_ndarray().reshape(-1, frame.layout.nb_channels)[:, 0]
                    self.frames.append(data.astype(np.float32) / 32768.0)
                    self.arrivals.append(now)

    def audio(self) -> np.ndarray:
        return np.concatenate(self.frames) if self.frames else np.zeros(0, np.float32)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


def offer_json(pc: RTCPeerConnection) -> dict[str, str]:
    return {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}


async def broadcaster(source: MediaStreamTrack | str) -> tuple[RTCPeerConnection, dict[str, str]]:
    """A sending peer (a track, or a file played by aiortc's MediaPlayer) and its offer."""
    pc = RTCPeerConnection()
    track = MediaPlayer(source).audio if isinstance(source, str) else source
    pc.addTransceiver(track, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, offer_json(pc)


async def listener(
    offer: dict[str, Any], *, keep: bool = True, configuration: RTCConfiguration | None = None
) -> tuple[RTCPeerConnection, dict[str, str], Capture]:
    """A receive-only peer answering the server's offer (the app's or Janus's): the peer, its
    answer ({"sdp", "type": "answer"}) and the Capture its audio goes into."""
    pc = RTCPeerConnection(configuration)
    capture = Capture(keep=keep)
    pc.on("track", capture.start)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    return pc, offer_json(pc), capture


async def accept(pc: RTCPeerConnection, answer: dict[str, Any]) -> None:
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))


async def wait_for(predicate: Any, timeout: float, interval: float = 0.05) -> None:  # noqa: ASYNC109
    """Poll `predicate()` (plain or async) until true; for states that raise no event.
    TimeoutError otherwise."""
    async with asyncio.timeout(timeout):
        while not await _truth(predicate()):  # noqa: ASYNC110 - these states have no event to await
            await asyncio.sleep(interval)


async def _truth(value: Any) -> bool:
    return bool(await value) if inspect.isawaitable(value) else bool(value)


class ServicesClient(AsyncClient):
    """Django's AsyncClient with `scope["services"]` set, as ServicesMiddleware does in the app.

    (Passing services=... to AsyncClient no longer works: Django 5.2.19 turns every extra
    keyword into a header.)
    """

    def __init__(self, services: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.services = services

    async def request(self, **request: Any) -> Any:
        # request() takes the ASGI scope's keys (Django builds the scope from them).
        request.setdefault("services", self.services)
        # Like Django's ASGIHandler under Daphne (the test handler skips it): sync code of this
        # request gets its own thread, not asgiref's single shared one, which background tasks
        # (ending a stream, presence) also need while the request waits for them.
        async with ThreadSensitiveContext():
            try:
                return await super().request(**request)
            finally:  # the test handler keeps connections open; this thread's would leak
                await sync_to_async(connections.close_all)()


JSON = "application/json"


async def close_db_connections() -> None:
    """Close the connections the async ORM opened on asgiref's worker thread: left open, they
    keep PostgreSQL from dropping the test database."""
    await database_sync_to_async(connections.close_all)()


async def signed_in(services: Any, user: Any) -> ServicesClient:
    client = ServicesClient(services)
    await client.aforce_login(user)
    return client


async def go_live(client: AsyncClient, source: Any, pcs: list[Any], **settings: Any) -> str:
    """Start a stream and connect a broadcaster peer playing `source`; returns the session id."""
    response = await client.post("/api/stream/start/", settings, content_type=JSON)
    assert response.status_code == 201, response.content
    session_id = response.json()["session_id"]
    pc, offer = await broadcaster(source)
    pcs.append(pc)
    response = await client.post("/api/webrtc/offer/", {"session_id": session_id, **offer}, content_type=JSON)
    assert response.status_code == 200, response.content
    await accept(pc, response.json())
    return session_id


async def listen(client: AsyncClient, username: str, pcs: list[Any]) -> Capture:
    """Connect a listener peer to `username`'s stream; its audio lands in the returned Capture."""
    response = await client.post(f"/api/webrtc/listen/{username}/", {}, content_type=JSON)
    assert response.status_code == 200, response.content
    offer = response.json()
    pc, answer, capture = await listener(offer)
    pcs.append(pc)
    response = await client.post(
        f"/api/webrtc/listen/{username}/answer/",
        {"listener_id": offer["listener_id"], **answer},
        content_type=JSON,
    )
    assert response.status_code == 200, response.content
    return capture


async def stop(client: AsyncClient) -> None:
    response = await client.post("/api/stream/stop/")
    assert response.status_code == 200, response.content


def _json_or_text(body: bytes) -> dict[str, Any]:
    """The answer's JSON; a body that is not JSON (a server error page) as {"text": ...}."""
    try:
        return json.loads(body or b"{}")
    except ValueError:
        return {"text": body.decode(errors="replace")[:500]}


async def go_live_over_http(api: HttpApi, source: Any, pcs: list[Any], **settings: Any) -> str:
    """`go_live` against a real server: start a stream, connect a broadcaster peer playing
    `source`; returns the session id."""
    status, body = await api.acall("POST", "/api/stream/start/", settings)
    assert status == 201, body
    pc, offer = await broadcaster(source)
    pcs.append(pc)
    status, answer = await api.acall(
        "POST", "/api/webrtc/offer/", {"session_id": body["session_id"], **offer}
    )
    assert status == 200, answer
    await accept(pc, answer)
    return body["session_id"]


class HttpApi:
    """JSON calls to a real server as one signed-in user (session cookie + CSRF token)."""

    def __init__(self, base_url: str, session_key: str) -> None:
        self.base_url = base_url
        self.csrf = secrets.token_hex(16)  # any 32-character secret works as cookie and header
        self._cookie = f"sessionid={session_key}; csrftoken={self.csrf}"

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)  # noqa: S310
        request.add_header("Cookie", self._cookie)
        request.add_header("X-CSRFToken", self.csrf)
        request.add_header("Content-Type", "application/json")
        request.add_header("Referer", self.base_url + "/")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our test server
                return response.status, _json_or_text(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _json_or_text(exc.read())

    async def acall(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        return await asyncio.to_thread(self.call, method, path, body)


async def listen_over_http(
    api: HttpApi, username: str, *, keep: bool = True
) -> tuple[RTCPeerConnection, Capture, str]:
    """The page's listen flow against a real server: its offer, our answer. (pc, capture, listener id)"""
    status, offer = await api.acall("POST", f"/api/webrtc/listen/{username}/", {})
    assert status == 200, offer
    pc, answer, capture = await listener(offer, keep=keep)
    body = {"listener_id": offer["listener_id"], **answer}
    status, result = await api.acall("POST", f"/api/webrtc/listen/{username}/answer/", body)
    assert status == 200, result
    return pc, capture, offer["listener_id"]
