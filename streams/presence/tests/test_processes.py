"""Two real Daphne processes behind one Redis and one database: events cross processes, and a
SIGKILLed process's users go offline (and its streams end) for friends on the other."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection
from django.test import Client

from testing.cluster import WsClient, cluster_env
from testing.daphne import DaphneServer, database_url
from users.models import User

pytestmark = pytest.mark.django_db(transaction=True)
TTL_S = 3.0  # a dead process is noticed after this; the issue allows 60 s
CSRF = "presencetestcsrftoken0123456789a"  # 32 characters: a valid CSRF secret


@pytest.fixture(scope="module")
def cluster(
    redis_url: str, django_db_setup: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[DaphneServer]]:
    """Processes A and B on the test database (A is killed by the first test; B lives on)."""
    folder = tmp_path_factory.mktemp("cluster")
    env = cluster_env(
        redis_url,
        database_url(connection.settings_dict),
        PRESENCE_TTL_S=str(TTL_S),
        PRESENCE_HEARTBEAT_S="0.5",
        PRESENCE_GRACE_S="1",
        MEDIA_ROOT=str(folder / "media"),
        LOG_LEVEL="INFO",
    )
    servers = [DaphneServer(env, folder / f"daphne{i}.log") for i in range(2)]
    for server in servers:
        server.spawn()
    try:
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


def cookie(user: User) -> str:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def post(port: int, path: str, session: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Cookie": f"{session}; csrftoken={CSRF}",
            "X-CSRFToken": CSRF,
            "Origin": f"http://127.0.0.1:{port}",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return response.status, json.loads(response.read())


async def expect(ws: WsClient, within: float, **fields: Any) -> dict[str, Any]:
    """The next message, which must carry `fields`, within `within` seconds."""
    message = await ws.next(within)
    assert {key: message.get(key) for key in fields} == fields, message
    return message


async def test_events_cross_processes_and_a_killed_process_is_cleaned_up(
    cluster: list[DaphneServer], befriend: Callable[[User, User], None], alice: User, bob: User, carol: User
) -> None:
    a, b = cluster
    for x, y in [(alice, bob), (carol, bob)]:
        await database_sync_to_async(befriend)(x, y)
    sessions = {user.username: await database_sync_to_async(cookie)(user) for user in (alice, bob, carol)}
    sockets: list[WsClient] = []
    try:
        bob_ws = await WsClient.connect(b.port, "/ws/presence/", sessions["bob"])
        sockets.append(bob_ws)
        assert (await bob_ws.next())["type"] == "snapshot"
        for name in ("alice", "carol"):  # both only on process A
            sockets.append(await WsClient.connect(a.port, "/ws/presence/", sessions[name]))
            await expect(bob_ws, 5, type="presence", username=name, is_online=True)

        # The stream exists once the start request has answered; bob hears of it within 1 s.
        status, _ = await asyncio.to_thread(post, a.port, "/api/stream/start/", sessions["alice"], {})
        assert status == 201
        await expect(bob_ws, 1.0, type="streaming_status", username="alice", is_streaming=True)

        a.kill()
        killed = time.monotonic()
        heard = [await bob_ws.next(60) for _ in range(3)]
        assert time.monotonic() - killed < 60
        assert sorted((m["type"], m["username"]) for m in heard) == [
            ("presence", "alice"),
            ("presence", "carol"),
            ("streaming_status", "alice"),
        ]
        assert all(m.get("is_online", m.get("is_streaming")) is False for m in heard)
        rows = {u.username: u async for u in User.objects.filter(username__in=["alice", "carol"])}
        assert not rows["alice"].is_streaming
        assert not any(row.is_online for row in rows.values())

        await bob_ws.send({"type": "ping"})  # open for longer than redis-py's 5 s read timeout: still alive
        assert await bob_ws.next() == {"type": "pong"}
    finally:
        for ws in sockets:
            await ws.close()


async def test_sockets_are_refused_across_origins_and_closed_when_anonymous(
    cluster: list[DaphneServer],
) -> None:
    anonymous = await WsClient.connect(cluster[1].port, "/ws/presence/", None)
    await anonymous.wait_closed()
    assert anonymous.close_code == 4401
    assert anonymous.queue.empty()  # closed before any data
    foreign = await WsClient.connect(cluster[1].port, "/ws/presence/", None, origin="http://evil.example")
    assert foreign.refused == 403  # refused at the handshake, before any consumer ran
