"""The API helper (fc25_denoise/api.py) as every endpoint uses it: the order of the checks
(auth 401 -> access 403/404 -> body 400/413/415), bodies of any type answered with a JSON 4xx,
OPTIONS, errors without internals, and a database outage as 503."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.db import OperationalError

from fc25_denoise.api import UNAVAILABLE
from fc25_denoise.services import Services
from streams.models import Recording
from streams.recordings import service as recordings
from testing import peers
from users import friendships
from users.models import FriendRequest, User

pytestmark = [pytest.mark.webrtc, pytest.mark.django_db(transaction=True)]

MULTIPART = (
    "multipart/form-data; boundary=xyz",
    b'--xyz\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--xyz--\r\n',
)
FORM = ("application/x-www-form-urlencoded", b"denoise=true&username=bob")
TEXT = ("text/plain", b"hello")
GARBAGE_SDP = {"sdp": "v=0\r\nnot sdp at all\r\n", "type": "offer"}


@pytest.fixture
async def world(
    live: Services, alice: User, bob: User, carol: User, befriend: Any
) -> AsyncIterator[dict[str, Any]]:
    """alice is live, bob is her friend, carol nobody's; dave is a friend of alice who is not live."""
    dave = await User.objects.acreate_user(username="dave", password="x")
    await database_sync_to_async(befriend)(alice, bob)
    await database_sync_to_async(befriend)(alice, dave)
    clients = {u.username: await peers.signed_in(live, u) for u in (alice, bob, carol, dave)}
    started = await clients["alice"].post("/api/stream/start/", {}, content_type=peers.JSON)
    assert started.status_code == 201
    yield {"clients": clients, "session_id": started.json()["session_id"], "live": live}
    await peers.stop(clients["alice"])


async def _send(client: Any, method: str, path: str, content_type: str, body: bytes) -> Any:
    return await client.generic(method, path, body, content_type=content_type)


def _refusal(response: Any, status: int) -> str:
    assert (response.status_code, response["Content-Type"]) == (status, "application/json"), response.content[
        :300
    ]
    body = response.json()
    assert list(body) == ["error"]
    return body["error"]


async def _state(live: Services) -> Any:
    rows = await database_sync_to_async(
        lambda: (
            sorted(User.objects.values_list("username", "is_streaming", "noise_denoise")),
            list(FriendRequest.objects.values_list()),
            list(Recording.objects.values_list("pk", "title")),
        )
    )()
    return rows, sorted(live.registry.sessions), live.registry.open_peer_connections()


@pytest.mark.parametrize("kind", [MULTIPART, FORM, TEXT], ids=["multipart", "form", "text"])
@pytest.mark.parametrize(
    ("who", "method", "path"),
    [
        ("bob", "POST", "/api/stream/start/"),
        ("alice", "POST", "/api/webrtc/offer/"),
        ("bob", "POST", "/api/webrtc/listen/alice/"),
        ("alice", "PATCH", "/api/stream/settings/"),
        ("bob", "POST", "/api/friend-request/"),
        ("bob", "PATCH", "/api/me/noise/"),
    ],
)
async def test_a_body_that_is_not_json_is_a_415_and_changes_nothing(
    world: dict[str, Any], who: str, method: str, path: str, kind: tuple[str, bytes]
) -> None:
    before = await _state(world["live"])
    response = await _send(world["clients"][who], method, path, *kind)
    assert "JSON" in _refusal(response, 415)
    assert await _state(world["live"]) == before


@pytest.mark.parametrize(
    ("who", "path", "status"),
    [
        ("carol", "/api/webrtc/listen/alice/", 403),  # not a friend
        ("bob", "/api/webrtc/listen/nobody/", 404),  # no such user
        ("alice", "/api/webrtc/listen/dave/", 404),  # a friend who is not live
        ("alice", "/api/webrtc/listen/alice/", 403),  # herself
    ],
)
@pytest.mark.parametrize(
    "body",
    [
        ("application/json", json.dumps(GARBAGE_SDP).encode()),
        ("application/json", b"{not json"),
        MULTIPART,
        ("application/json", b'{"pad": "' + b"x" * 70_000 + b'"}'),
    ],
    ids=["garbage-sdp", "not-json", "multipart", "oversize"],
)
async def test_who_may_listen_is_checked_before_the_body(
    world: dict[str, Any], who: str, path: str, status: int, body: tuple[str, bytes]
) -> None:
    before = await _state(world["live"])
    _refusal(await _send(world["clients"][who], "POST", path, *body), status)
    assert await _state(world["live"]) == before


async def test_being_live_is_checked_before_the_settings_body(world: dict[str, Any]) -> None:
    for body in (b"{not json", b'{"denoise": "loud"}', b"[]"):
        _refusal(
            await _send(world["clients"]["bob"], "PATCH", "/api/stream/settings/", "application/json", body),
            404,
        )
        _refusal(
            await _send(
                world["clients"]["alice"], "PATCH", "/api/stream/settings/", "application/json", body
            ),
            400,
        )


async def test_whose_recording_it_is_comes_before_the_rename_body(world: dict[str, Any]) -> None:
    alice = await User.objects.aget(username="alice")
    rec = await database_sync_to_async(recordings.create_recording)(
        alice, denoise=True, atten_lim_db=100.0, record_raw=False
    )
    path = f"/api/recordings/{rec.pk}/"
    for body in (b"{not json", b'{"title": 5}', b'{"name": "x"}'):
        _refusal(
            await _send(world["clients"]["bob"], "PATCH", path, "application/json", body), 404
        )  # a friend's
        _refusal(await _send(world["clients"]["alice"], "PATCH", path, "application/json", body), 400)


async def test_whose_session_it_is_comes_before_what_the_sdp_says(world: dict[str, Any]) -> None:
    clients, sid = world["clients"], world["session_id"]
    foreign = {"session_id": sid, **GARBAGE_SDP}
    _refusal(await clients["bob"].post("/api/webrtc/offer/", foreign, content_type=peers.JSON), 403)
    unknown = {"session_id": "f" * 32, **GARBAGE_SDP}
    _refusal(await clients["alice"].post("/api/webrtc/offer/", unknown, content_type=peers.JSON), 404)
    _refusal(await clients["alice"].post("/api/webrtc/offer/", foreign, content_type=peers.JSON), 400)


async def test_sign_in_comes_first_even_for_a_bad_body(world: dict[str, Any]) -> None:
    anonymous = peers.ServicesClient(world["live"])
    for method, path in [("POST", "/api/webrtc/listen/alice/"), ("PATCH", "/api/stream/settings/")]:
        assert _refusal(await _send(anonymous, method, path, *MULTIPART), 401) == "Sign in first."


ENDPOINTS = [
    ("/api/search/", "GET, HEAD, OPTIONS"),
    ("/api/friends/", "GET, HEAD, OPTIONS"),
    ("/api/friends/bob/", "DELETE, OPTIONS"),
    ("/api/friend-request/", "POST, OPTIONS"),
    ("/api/friend-requests/", "GET, HEAD, OPTIONS"),
    ("/api/friend-request/1/accept/", "POST, OPTIONS"),
    ("/api/me/noise/", "GET, HEAD, PATCH, OPTIONS"),
    ("/api/presence/", "GET, HEAD, OPTIONS"),
    ("/api/ice-servers/", "GET, HEAD, OPTIONS"),
    ("/api/recordings/alice/", "GET, HEAD, PATCH, DELETE, OPTIONS"),
    ("/api/recordings/1/audio/", "GET, HEAD, OPTIONS"),
    ("/api/recordings/1/peaks/", "GET, HEAD, OPTIONS"),
    ("/api/stream/start/", "POST, OPTIONS"),
    ("/api/stream/stop/", "POST, OPTIONS"),
    ("/api/stream/settings/", "PATCH, OPTIONS"),
    ("/api/stream/status/alice/", "GET, HEAD, OPTIONS"),
    ("/api/webrtc/offer/", "POST, OPTIONS"),
    ("/api/webrtc/listen/alice/", "POST, OPTIONS"),
    ("/api/webrtc/listen/alice/answer/", "POST, OPTIONS"),
    ("/api/webrtc/listen/alice/leave/", "POST, OPTIONS"),
]


@pytest.mark.parametrize(("path", "allow"), ENDPOINTS)
async def test_options_lists_the_methods_and_nothing_else(
    world: dict[str, Any], path: str, allow: str
) -> None:
    response = await world["clients"]["bob"].options(path)
    assert (response.status_code, response["Allow"], response.content) == (200, allow, b"")


INTERNALS = re.compile(r"[A-Z][a-z]+(Error|Exception)\b|Traceback|\(\w+Error\)")


async def test_error_sentences_name_no_internals_and_echo_no_input(world: dict[str, Any]) -> None:
    clients, sid = world["clients"], world["session_id"]
    junk = "x" * 10_000
    cases = [
        (
            "alice",
            "post",
            "/api/webrtc/offer/",
            {"session_id": sid, "sdp": "v=0\r\n" + "a=" * 900, "type": "offer"},
        ),
        (
            "alice",
            "post",
            "/api/webrtc/offer/",
            {"session_id": sid, "sdp": "v=0\r\nm=audio x\r\n", "type": "offer"},
        ),
        ("alice", "patch", "/api/stream/settings/", {junk: 1}),
        ("bob", "post", "/api/friend-request/", {"username": junk}),
        ("bob", "patch", f"/api/recordings/{junk[:50]}/", {"title": "x"}),
        ("bob", "get", f"/api/no-such-{junk[:3000]}/", None),
        ("bob", "post", "/api/stream/start/", {"atten_lim_db": junk}),
    ]
    for who, method, path, body in cases:
        call = getattr(clients[who], method)
        response = await (call(path, body, content_type=peers.JSON) if body is not None else call(path))
        assert 400 <= response.status_code < 500, (path, response.content[:200])
        text = response.json()["error"]
        assert not INTERNALS.search(text), text
        assert len(text) <= 200, text
        assert "xxxxxxxxxx" not in text, text


async def test_a_database_outage_is_a_503_with_one_sentence(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: object) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(friendships, "search", down)
    response = await world["clients"]["bob"].get("/api/search/", {"q": "ali"})
    assert _refusal(response, 503) == UNAVAILABLE


async def test_a_content_length_that_is_not_a_number_is_a_400(world: dict[str, Any]) -> None:
    response = await world["clients"]["bob"].post(
        "/api/friend-request/", b"{}", content_type=peers.JSON, headers={"Content-Length": "12abc"}
    )
    _refusal(response, 400)


def test_a_csrf_refusal_is_json_under_the_api_and_djangos_page_elsewhere(world: dict[str, Any]) -> None:
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    page = client.post("/accounts/login/", {"username": "bob", "password": "x"})
    assert (page.status_code, page["Content-Type"].split(";")[0]) == (403, "text/html")
    client.force_login(User.objects.get(username="bob"))
    api = client.post("/api/friend-request/", {"username": "alice"}, content_type=peers.JSON)
    assert "CSRF" in _refusal(api, 403)
