"""The live path's HTTP API: every bad input is a 4xx JSON error and changes nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from aiortc import RTCPeerConnection
from channels.db import database_sync_to_async

from fc25_denoise.services import Services
from streams.cluster.router import StreamRouter
from streams.live.session import Timing
from streams.live.webrtc import parse_offer
from streams.models import Recording
from testing import peers
from users.models import User

pytestmark = [pytest.mark.webrtc, pytest.mark.django_db(transaction=True)]

GARBAGE_SDP = "v=0\r\nthis is not sdp\r\nm=audio x\r\n"


async def _sdp(direction: str, kind: str = "audio") -> str:
    pc = RTCPeerConnection()
    pc.addTransceiver(kind, direction=direction)
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


async def _answer_sdp() -> str:
    """A listener's answer to a server's offer, as aiortc makes it (never connected)."""
    server, client = RTCPeerConnection(), RTCPeerConnection()
    server.addTransceiver("audio", direction="sendonly")
    await server.setLocalDescription(await server.createOffer())
    await client.setRemoteDescription(server.localDescription)
    await client.setLocalDescription(await client.createAnswer())
    sdp = client.localDescription.sdp
    await server.close()
    await client.close()
    return sdp


@pytest.fixture
async def sdps() -> dict[str, str]:
    """Real offers and an answer made by aiortc (never connected)."""
    return {
        "send": await _sdp("sendonly"),
        "recv": await _sdp("recvonly"),
        "video": await _sdp("sendonly", "video"),
        "answer": await _answer_sdp(),
    }


@pytest.fixture
async def world(
    live: Services, alice: User, bob: User, carol: User, befriend: Any
) -> AsyncIterator[dict[str, Any]]:
    """alice is live (no media yet); bob is her friend, carol is nobody's friend."""
    await database_sync_to_async(befriend)(alice, bob)
    clients = {u.username: await peers.signed_in(live, u) for u in (alice, bob, carol)}
    clients[None] = peers.ServicesClient(live)  # anonymous
    response = await clients["alice"].post("/api/stream/start/", {}, content_type=peers.JSON)
    assert response.status_code == 201
    yield {"clients": clients, "session_id": response.json()["session_id"], "live": live}
    await peers.stop(clients["alice"])


async def _state(live: Services) -> tuple[Any, ...]:
    sessions = {
        uid: (s.session_id, s.listener_count, s.denoise, s.atten_lim_db, s.broadcaster is None)
        for uid, s in live.registry.sessions.items()
    }
    flags = await database_sync_to_async(
        lambda: sorted(User.objects.values_list("username", "is_streaming"))
    )()
    recordings = await Recording.objects.acount()
    return sessions, flags, recordings, live.registry.open_peer_connections()


def _cases(sid: str, sdps: dict[str, str]) -> list[tuple[str | None, str, str, Any, int]]:
    send = {"sdp": sdps["send"], "type": "offer"}
    recv = {"sdp": sdps["recv"], "type": "offer"}
    answer = {"listener_id": "no-such-listener", "sdp": sdps["answer"], "type": "answer"}
    offer = "/api/webrtc/offer/"
    listen = "/api/webrtc/listen/alice/"
    answered, leave = listen + "answer/", listen + "leave/"
    big = "x" * (65 * 1024)
    return [
        # anonymous: 401 everywhere
        (None, "post", "/api/stream/start/", {}, 401),
        (None, "post", offer, {"session_id": sid, **send}, 401),
        (None, "post", listen, {}, 401),
        (None, "post", answered, answer, 401),
        (None, "post", leave, {"listener_id": "x"}, 401),
        (None, "patch", "/api/stream/settings/", {"denoise": False}, 401),
        (None, "post", "/api/stream/stop/", None, 401),
        (None, "get", "/api/stream/status/alice/", None, 401),
        # start
        ("alice", "post", "/api/stream/start/", {}, 409),
        ("bob", "post", "/api/stream/start/", {"denoise": "yes"}, 400),
        ("bob", "post", "/api/stream/start/", {"atten_lim_db": 101}, 400),
        ("bob", "post", "/api/stream/start/", {"atten_lim_db": "loud"}, 400),
        ("bob", "post", "/api/stream/start/", {"atten_lim_db": True}, 400),
        ("bob", "post", "/api/stream/start/", "{not json", 400),
        ("bob", "post", "/api/stream/start/", "[1, 2]", 400),
        ("bob", "post", "/api/stream/start/", "[" * 5000, 400),
        ("bob", "post", "/api/stream/start/", {"pad": big}, 413),
        ("bob", "get", "/api/stream/start/", None, 405),
        # broadcaster offer
        ("alice", "post", offer, {"session_id": sid, "sdp": GARBAGE_SDP, "type": "offer"}, 400),
        ("alice", "post", offer, {"session_id": sid, "sdp": sdps["video"], "type": "offer"}, 400),
        ("alice", "post", offer, {"session_id": sid, "sdp": sdps["send"], "type": "answer"}, 400),
        ("alice", "post", offer, {"session_id": sid, **recv}, 400),  # sends no audio
        ("alice", "post", offer, {"session_id": sid, "sdp": 42, "type": "offer"}, 400),
        ("alice", "post", offer, {"session_id": sid, "sdp": "", "type": "offer"}, 400),
        ("alice", "post", offer, {"session_id": "f" * 32, **send}, 404),
        ("alice", "post", offer, {"session_id": 7, **send}, 400),
        ("alice", "post", offer, send, 400),
        ("bob", "post", offer, {"session_id": sid, **send}, 403),
        ("alice", "post", offer, {"session_id": sid, "sdp": big, "type": "offer"}, 413),
        # listening: the server offers, the listener answers
        ("carol", "post", listen, {}, 403),
        ("alice", "post", listen, {}, 403),  # herself
        ("bob", "post", "/api/webrtc/listen/nobody/", {}, 404),
        ("alice", "post", "/api/webrtc/listen/bob/", {}, 404),  # a friend who is not live
        ("alice", "post", "/api/webrtc/listen/carol/", {}, 403),
        ("bob", "post", listen, recv, 400),  # the old flow: the browser no longer offers
        ("bob", "post", listen, "null", 400),
        ("bob", "get", listen, None, 405),
        ("bob", "post", listen, {"pad": big}, 413),
        ("carol", "post", answered, answer, 403),
        ("bob", "post", answered, answer, 404),  # no such listener
        ("bob", "post", answered, {**answer, "listener_id": 7}, 400),
        ("bob", "post", answered, {"sdp": sdps["answer"], "type": "answer"}, 400),
        ("bob", "post", answered, {**answer, "type": "offer"}, 400),
        ("bob", "post", answered, {**answer, "sdp": GARBAGE_SDP}, 400),
        ("bob", "post", answered, {**answer, "sdp": sdps["video"]}, 400),
        ("bob", "post", answered, {**answer, "sdp": big}, 413),
        ("bob", "get", answered, None, 405),
        ("carol", "post", leave, {"listener_id": "x"}, 403),
        ("bob", "post", leave, {}, 400),
        # settings
        ("bob", "patch", "/api/stream/settings/", {"denoise": False}, 404),
        ("alice", "patch", "/api/stream/settings/", {}, 400),
        ("alice", "patch", "/api/stream/settings/", {"denoise": 1}, 400),
        ("alice", "patch", "/api/stream/settings/", {"atten_lim_db": -1}, 400),
        ("alice", "patch", "/api/stream/settings/", {"atten_lim_db": float("nan")}, 400),
        ("alice", "patch", "/api/stream/settings/", {"volume": 3}, 400),
        ("alice", "patch", "/api/stream/settings/", "[]", 400),
        ("alice", "post", "/api/stream/settings/", {"denoise": False}, 405),
        ("alice", "patch", "/api/stream/settings/", {"denoise": False, "pad": big}, 413),
        # stop and status
        ("bob", "get", "/api/stream/stop/", None, 405),
        ("alice", "post", "/api/stream/stop/", {"pad": big}, 413),  # she stays live
        ("carol", "get", "/api/stream/status/alice/", None, 403),
        ("bob", "get", "/api/stream/status/nobody/", None, 404),
    ]


async def _send(client: Any, method: str, path: str, body: Any) -> Any:
    if body is None:
        return await getattr(client, method)(path)
    data = body if isinstance(body, str) else json.dumps(body)
    return await getattr(client, method)(path, data, content_type=peers.JSON)


async def test_bad_requests_get_json_errors_and_change_nothing(
    world: dict[str, Any], sdps: dict[str, str]
) -> None:
    live, clients = world["live"], world["clients"]
    before = await _state(live)
    for user, method, path, body, status in _cases(world["session_id"], sdps):
        response = await _send(clients[user], method, path, body)
        case = f"{user} {method.upper()} {path} -> {response.status_code} {response.content[:200]!r}"
        assert response.status_code == status, case
        assert response["Content-Type"] == "application/json", case
        assert isinstance(response.json()["error"], str), case
        assert await _state(live) == before, case


async def test_status_settings_and_a_second_offer(world: dict[str, Any], sdps: dict[str, str]) -> None:
    clients, sid = world["clients"], world["session_id"]
    status = await clients["bob"].get("/api/stream/status/alice/")
    assert status.status_code == 200
    body = status.json()
    assert body["is_streaming"] is True
    assert (body["denoise"], body["atten_lim_db"], body["listeners"]) == (True, 100.0, 0)
    assert body["started_at"]
    assert (await clients["bob"].get("/api/stream/status/bob/")).json()["is_streaming"] is False

    patched = await clients["alice"].patch(
        "/api/stream/settings/", {"denoise": False, "atten_lim_db": 12}, content_type=peers.JSON
    )
    assert patched.json() == {"denoise": False, "atten_lim_db": 12.0}
    assert (await clients["alice"].get("/api/stream/status/alice/")).json()["atten_lim_db"] == 12.0

    offer = {"session_id": sid, "sdp": sdps["send"], "type": "offer"}
    first = await clients["alice"].post("/api/webrtc/offer/", offer, content_type=peers.JSON)
    assert first.status_code == 200
    assert first.json()["type"] == "answer"
    assert "a=recvonly" in first.json()["sdp"]
    second = await clients["alice"].post("/api/webrtc/offer/", offer, content_type=peers.JSON)
    assert second.status_code == 409
    assert world["live"].registry.open_peer_connections() == 1


@pytest.mark.parametrize("encoding", ["form", "multipart"])
async def test_stop_accepts_a_beacon_with_the_csrf_form_field(
    live: Services, alice: User, encoding: str
) -> None:
    client = peers.ServicesClient(live, enforce_csrf_checks=True)
    await client.aforce_login(alice)
    token = "a" * 32
    client.cookies["csrftoken"] = token
    assert (await client.post("/api/stream/start/", {}, content_type=peers.JSON)).status_code == 403
    started = await client.post(
        "/api/stream/start/", {}, content_type=peers.JSON, headers={"X-CSRFToken": token}
    )
    assert started.status_code == 201

    refused = await client.post("/api/stream/stop/")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["error"]
    assert live.registry.session_for(alice.pk) is not None
    if encoding == "form":
        response = await client.post(
            "/api/stream/stop/",
            f"csrfmiddlewaretoken={token}",
            content_type="application/x-www-form-urlencoded",
        )
    else:
        response = await client.post("/api/stream/stop/", {"csrfmiddlewaretoken": token})  # multipart
    assert response.status_code == 200
    assert response.json() == {"stopped": True}
    assert live.registry.session_for(alice.pk) is None
    again = await client.post("/api/stream/stop/", {"csrfmiddlewaretoken": token})
    assert again.json() == {"stopped": False}  # idempotent


async def test_metrics_for_loopback_and_staff_only(live: Services, alice: User, bob: User) -> None:
    local = peers.ServicesClient(live)
    response = await local.get("/metrics")
    assert response.status_code == 200
    assert b"rd_live_streams" in response.content
    assert b"rd_server_latency_seconds_bucket" in response.content

    proxied = {"X-Forwarded-For": "203.0.113.9"}
    assert (await local.get("/metrics", headers=proxied)).status_code == 403
    user = await peers.signed_in(live, alice)
    denied = await user.get("/metrics", headers=proxied)
    assert denied.status_code == 403
    assert denied.json()["error"]
    bob.is_staff = True
    await bob.asave()
    staff = await peers.signed_in(live, bob)
    assert (await staff.get("/metrics", headers=proxied)).status_code == 200


async def test_a_stream_started_by_a_request_can_end_by_itself_later(make_registry: Any, alice: User) -> None:
    # The session's tasks outlive the request; they must not carry its (then dead) asgiref executor.
    registry = await make_registry(timing=Timing(first_media_s=0.3, watchdog_s=0.05))
    client = await peers.signed_in(SimpleNamespace(registry=registry, router=StreamRouter(registry)), alice)
    response = await client.post("/api/stream/start/", {}, content_type=peers.JSON)
    assert response.status_code == 201
    await peers.wait_for(lambda: registry.session_for(alice.pk) is None, timeout=10)
    await alice.arefresh_from_db()
    assert not alice.is_streaming
    assert (await Recording.objects.aget(owner=alice)).finished
    assert registry.events.names(alice.pk) == ["stream_started", "stream_ended"]


def _refused(sdp: str) -> str:
    """`sdp` with its only codec one aiortc cannot send (it parses; the answer is refused)."""
    out = []
    for line in sdp.split("\r\n"):
        if line.startswith(("a=rtpmap", "a=fmtp", "a=rtcp-fb")):
            continue
        if line.startswith("m=audio"):
            line = line.split(" UDP/TLS/RTP/SAVPF ")[0] + " UDP/TLS/RTP/SAVPF 111"
        out.append(line)
        if line.startswith("a=mid"):
            out.append("a=rtpmap:111 foo/8000")
    return "\r\n".join(out)


async def test_a_refused_offer_is_a_400_that_changes_nothing_and_the_next_offer_works(
    world: dict[str, Any], client_pcs: list
) -> None:
    live, alice = world["live"], world["clients"]["alice"]
    session = next(iter(live.registry.sessions.values()))
    pc, offer = await peers.broadcaster(peers.ArrayTrack(_tone(10)))
    client_pcs.append(pc)
    body = {"session_id": world["session_id"], "type": "offer"}
    parse_offer({**body, "sdp": _refused(offer["sdp"])}, "broadcast")  # it parses
    before = await _state(live)
    refused = await alice.post(
        "/api/webrtc/offer/", {**body, "sdp": _refused(offer["sdp"])}, content_type=peers.JSON
    )
    assert refused.status_code == 400
    assert "refused" in refused.json()["error"]
    assert await _state(live) == before
    answer = await alice.post("/api/webrtc/offer/", {**body, "sdp": offer["sdp"]}, content_type=peers.JSON)
    assert answer.status_code == 200, answer.content  # the same session takes the next offer
    await peers.accept(pc, answer.json())
    await peers.wait_for(lambda: session.media.frames_out >= 10, timeout=10)
    assert live.registry.sessions == {session.user_id: session}
    assert session.state == "live"


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * peers.RATE)) / peers.RATE
    return (6000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)


async def test_leaving_a_listener_already_gone_is_no_error(world: dict[str, Any]) -> None:
    response = await world["clients"]["bob"].post(
        "/api/webrtc/listen/alice/leave/", {"listener_id": "gone-already"}, content_type=peers.JSON
    )
    assert (response.status_code, response.json()) == (200, {"left": False})
