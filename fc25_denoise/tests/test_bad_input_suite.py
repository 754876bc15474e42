"""Bad input against a real Daphne: every JSON endpoint x every kind of caller (anonymous, a
stranger, one with a pending request, a friend, the owner) x every kind of bad body (malformed
JSON, multipart, form, text, oversize, wrong types, unicode and NUL, huge numbers) and bad path
or query values; every WebSocket path x bad origin, anonymous and junk frames.

Whatever arrives: a 4xx answer `{"error": "<short sentence>"}` (never a 5xx), nothing changes
in the database, and the server's log holds no traceback and no ERROR line.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from streams.models import Recording
from streams.recordings import service as recordings
from testing.browser import LiveServer, live_server
from testing.daphne import url_of_test_database
from testing.samples import ramp
from users import friendships
from users.models import FriendRequest, Friendship, User

pytestmark = [pytest.mark.webrtc, pytest.mark.django_db(transaction=True)]

ROLES = ["anonymous", "stranger", "pending", "friend", "owner"]
HUGE = "9" * 5000
PAD = "x" * 70_000
BODIES: dict[str, tuple[str, bytes]] = {
    "malformed": ("application/json", b'{"sdp": "v=0", '),
    "multipart": (
        "multipart/form-data; boundary=b0",
        b'--b0\r\nContent-Disposition: form-data; name="username"\r\n\r\nbob\r\n--b0--\r\n',
    ),
    "broken-multipart": ("multipart/form-data; boundary=b0", b"--b0\r\nno headers at all"),
    "form": ("application/x-www-form-urlencoded", b"username=bob&denoise=false&title=x"),
    "text": ("text/plain", b"denoise please"),
    "oversize": ("application/json", json.dumps({"pad": PAD}).encode()),
    "array": ("application/json", b"[1, 2, 3]"),
    "wrong-types": (
        "application/json",
        json.dumps(
            {
                "username": 5,
                "denoise": "yes",
                "atten_lim_db": "loud",
                "sdp": 42,
                "type": 1,
                "title": 7,
                "session_id": [],
            }
        ).encode(),
    ),
    "unicode-nul": (
        "application/json",
        b'{"username": "bo\\u0000b", "title": "\\ud800", "denoise": "\\u0000", "atten_lim_db": "\\u00e9",'
        b' "sdp": "v=0\\u0000\\r\\n", "type": "offer", "session_id": "\\u0000"}',
    ),
    "huge-ints": (
        "application/json",
        b'{"username": ' + HUGE.encode() + b', "atten_lim_db": ' + HUGE.encode() + b', "title": 1e400}',
    ),
    "not-utf8": ("application/json", b'{"username": "\xff\xfe"}'),
    "deep": ("application/json", b"[" * 10_000 + b"]" * 10_000),
}
# Endpoints that read a JSON body: each gets every bad body from every role.
JSON_ENDPOINTS = [
    ("POST", "/api/friend-request/"),
    ("PATCH", "/api/me/noise/"),
    ("PATCH", "/api/recordings/{recording}/"),
    ("POST", "/api/stream/start/"),
    ("PATCH", "/api/stream/settings/"),
    ("POST", "/api/webrtc/offer/"),
    ("POST", "/api/webrtc/listen/owner/"),
]
# The other endpoints, with path and query values no one should send (valid ones would change
# state, e.g. accept a request: those are the API tests' business).
ODD = ["%00", "%ED%A0%80", "x" * 300, HUGE, "-1", "0", "%E2%80%AE", "%27%20OR%201%3D1%20--"]
PATH_ENDPOINTS = [
    *(("GET", f"/api/search/?q={v}") for v in ODD),
    ("GET", "/api/friends/"),
    *(("DELETE", f"/api/friends/{v}/") for v in ODD),
    ("GET", "/api/friend-requests/"),
    *(("POST", f"/api/friend-request/{v}/accept/") for v in ("0", HUGE, "99999999999999999999")),
    ("GET", "/api/presence/"),
    ("GET", "/api/ice-servers/"),
    *(("GET", f"/api/recordings/owner/?limit={v}&offset={v}&min_s={v}") for v in ("-1", HUGE, "nan", "%00")),
    *(("GET", f"/api/recordings/{v}/") for v in ODD),
    *(("DELETE", f"/api/recordings/{v}/") for v in ("abc", HUGE, "-1")),
    *(("GET", f"/api/recordings/{v}/audio/") for v in ("0", HUGE)),
    ("GET", "/api/recordings/{recording}/raw/"),
    ("GET", "/api/recordings/{recording}/peaks/"),
    *(("GET", f"/api/stream/status/{v}/") for v in ODD),
    ("GET", "/api/stream/status/owner/"),
    ("PUT", "/api/stream/start/"),
    ("GET", "/api/webrtc/offer/"),
    ("GET", "/api/nothing-here/"),
    ("POST", "/api/friend-request"),
]
RANGES = ["bytes=999999999999-", "bytes=-0", "bytes=5-1", "bytes=" + HUGE + "-", "bytes=0-1,2-3", "chars=0-1"]
INTERNALS = re.compile(r"[A-Z][a-z]+(Error|Exception)\b|Traceback")


@pytest.fixture(scope="module")
def daphne_server(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("bad-input-server")
    server = live_server(
        database_url=url_of_test_database(), media_root=tmp / "media", log_path=tmp / "daphne.log"
    )
    server.env["LOG_LEVEL"] = "INFO"  # every line the app logs, to be read afterwards
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Caller:
    """Raw HTTP as one role: its session cookie and a CSRF token (header and cookie)."""

    def __init__(self, base_url: str, session: str | None) -> None:
        self.host, port = base_url.removeprefix("http://").split(":")
        self.port = int(port)
        token = secrets.token_hex(16)
        self.headers = {"Cookie": f"csrftoken={token}" + (f"; sessionid={session}" if session else "")}
        self.headers["X-CSRFToken"] = token

    def send(
        self, method: str, path: str, body: tuple[str, bytes] | None = None, **headers: str
    ) -> tuple[int, str, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            sent = {**self.headers, **headers}
            if body is not None:
                sent["Content-Type"] = body[0]
            conn.request(method, path, body=body[1] if body else None, headers=sent)
            response = conn.getresponse()
            return response.status, response.getheader("Content-Type") or "", response.read()
        finally:
            conn.close()


def _session(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


@pytest.fixture
def world(daphne_server: LiveServer, settings: Any) -> Iterator[dict[str, Any]]:
    """owner (live, one recording), friend, pending (asked the owner), stranger; sessions for each."""
    settings.MEDIA_ROOT = Path(daphne_server.env["MEDIA_ROOT"])
    people = {role: User.objects.create_user(role, password="x" * 12) for role in ROLES[1:]}
    Friendship.objects.create(
        user_a=min(people["owner"], people["friend"], key=lambda u: u.pk),
        user_b=max(people["owner"], people["friend"], key=lambda u: u.pk),
    )
    request = friendships.send_request(people["pending"], "owner")
    rec = recordings.create_recording(people["owner"], denoise=True, atten_lim_db=100.0, record_raw=True)
    recorder = recordings.open_recorder(rec)
    for i in range(20):
        recorder.write(ramp(i), -ramp(i))
    recordings.finalize_recording(rec.pk, recorder.close())
    callers = {
        role: Caller(daphne_server.url, _session(people[role]) if role != "anonymous" else None)
        for role in ROLES
    }
    status, _, body = callers["owner"].send("POST", "/api/stream/start/", ("application/json", b"{}"))
    assert status == 201, body
    yield {"callers": callers, "ids": {"recording": rec.pk, "request": request.pk}, "server": daphne_server}
    status, _, body = callers["owner"].send("POST", "/api/stream/stop/")
    assert status == 200, body


def _snapshot() -> Any:
    return (
        list(
            User.objects.order_by("pk").values_list(
                "username", "is_active", "noise_denoise", "noise_atten_lim_db"
            )
        ),
        list(Friendship.objects.order_by("pk").values_list()),
        list(FriendRequest.objects.order_by("pk").values_list("status")),
        # Not `finished`: a stream that gets no media ends by itself after 15 s (Timing).
        list(Recording.objects.order_by("pk").values_list("pk", "title")),
    )


def _check(case: str, status: int, content_type: str, body: bytes, *, refused: bool = True) -> None:
    """A JSON 4xx; or, with refused=False (a search for odd text, a list), any answer but a 5xx."""
    assert status < 500, (case, status, body[:300])
    if not refused and status < 400:
        return
    assert status >= 400, (case, status, body[:300])
    assert content_type == "application/json", (case, status, content_type, body[:200])
    answer = json.loads(body)
    assert list(answer) == ["error"], (case, answer)
    sentence = answer["error"]
    assert isinstance(sentence, str), (case, sentence)
    assert 0 < len(sentence) <= 200, (case, sentence)
    assert not INTERNALS.search(sentence), (case, sentence)
    assert "xxxxxxxxxx" not in sentence, (case, sentence)  # no echo of what was sent
    assert "99999999" not in sentence, (case, sentence)


def test_every_endpoint_refuses_bad_input_with_a_json_4xx(world: dict[str, Any]) -> None:
    callers, ids = world["callers"], world["ids"]
    sent = 0
    for role in ROLES:
        caller = callers[role]
        # The owner is live for each caller's turn (a stream without media ends after 15 s).
        assert callers["owner"].send("POST", "/api/stream/start/", ("application/json", b"{}"))[0] in (
            201,
            409,
        )
        before = _snapshot()
        for method, template in JSON_ENDPOINTS:
            path = template.format(**ids)
            for kind, body in BODIES.items():
                _check(f"{role} {method} {path} {kind}", *caller.send(method, path, body))
                sent += 1
        for method, template in PATH_ENDPOINTS:
            path = template.format(**ids)
            answer = caller.send(method, path, BODIES["multipart"])
            _check(f"{role} {method} {path[:80]}", *answer, refused=method != "GET" or role == "anonymous")
            sent += 1
        for value in RANGES:
            status, content_type, body = caller.send(
                "GET", f"/api/recordings/{ids['recording']}/audio/", Range=value
            )
            if role in ("owner", "friend"):  # may fetch it: the whole file or one range, or 416
                assert status in (200, 206, 416), (role, value, status)
            else:
                _check(f"{role} Range {value[:40]}", status, content_type, body)
            sent += 1
        assert _snapshot() == before, role
    assert sent >= 300
    log = world["server"].log()
    assert "Traceback" not in log, log[-3000:]
    assert " ERROR " not in log, [line for line in log.splitlines() if " ERROR " in line][:5]


async def _socket_answers(
    url: str, origin: str, cookie: str | None, frames: list[Any]
) -> tuple[Any, list[Any]]:
    headers = {"Cookie": cookie} if cookie else {}
    try:
        async with connect(
            url, origin=origin, additional_headers=headers, max_size=2**22, open_timeout=10
        ) as ws:
            replies = []
            try:
                first = await asyncio.wait_for(ws.recv(), timeout=5)
                replies.append(json.loads(first)["type"])
                for frame in frames:
                    await ws.send(frame)
                    replies.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=5)).get("type"))
            except ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None, replies
            return "open", replies
    except InvalidStatus as refused:
        return refused.response.status_code, []


JUNK_FRAMES: list[Any] = [
    b"\x00\x01binary",
    "not json",
    "[1, 2]",
    '{"type": "subscribe", "to": "everyone"}',
    '{"type": "ping", "pad": "' + "x" * 5000 + '"}',
    "\U0001f600 \u0000",
    '{"type": ' + HUGE + "}",
    "{" * 2000,
]


def test_every_socket_path_refuses_bad_origins_strangers_and_junk(world: dict[str, Any]) -> None:
    server: LiveServer = world["server"]
    base = server.url.replace("http://", "ws://")
    own_origin = server.url
    sessions = {role: caller.headers["Cookie"] for role, caller in world["callers"].items()}
    paths = ["/ws/presence/", "/ws/stream/owner/", "/ws/stream/nobody/", "/ws/stream/%00/", "/ws/x/", "/ws/"]
    before = _snapshot()

    async def run() -> None:
        for path in paths:
            port = int(own_origin.rsplit(":", 1)[1])
            others = [
                f"http://127.0.0.1:{port + 1}",
                f"https://127.0.0.1:{port}",
                "http://evil.example",
                "null",
            ]
            for origin in others:
                code, _ = await _socket_answers(base + path, origin, sessions["owner"], [])
                assert code == 403, (path, origin, code)
            code, replies = await _socket_answers(base + path, own_origin, None, JUNK_FRAMES)
            assert code == (4404 if path.startswith("/ws/x") or path == "/ws/" else 4401), (
                path,
                code,
                replies,
            )
        for role, path in [
            ("owner", "/ws/presence/"),
            ("friend", "/ws/stream/owner/"),
            ("owner", "/ws/stream/owner/"),
        ]:
            code, replies = await _socket_answers(base + path, own_origin, sessions[role], JUNK_FRAMES)
            assert code == "open", (role, path, code)
            assert replies[1:] == ["error"] * len(JUNK_FRAMES), (role, path, replies)
        for role, path, expected in [
            ("stranger", "/ws/stream/owner/", 4403),
            ("pending", "/ws/stream/owner/", 4403),
        ]:
            code, _ = await _socket_answers(base + path, own_origin, sessions[role], JUNK_FRAMES)
            assert code == expected, (role, path, code)

    asyncio.run(run())
    assert _snapshot() == before
    log = server.log()
    assert "Traceback" not in log, log[-3000:]
    assert " ERROR " not in log, [line for line in log.splitlines() if " ERROR " in line][:5]
