"""GET /api/presence/: the polling fallback answers what the socket's snapshot says, with an ETag."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from channels.db import database_sync_to_async

from streams.presence.redis_store import RedisStore
from testing.fixtures import WsHarness
from testing.peers import ServicesClient
from users.models import FriendRequest, User

pytestmark = pytest.mark.django_db(transaction=True)
MakeHarness = Callable[..., WsHarness]
URL = "/api/presence/"


async def client_for(harness: WsHarness, user: User | None) -> ServicesClient:
    client = ServicesClient(harness.services)
    if user is not None:
        await client.aforce_login(user)
    return client


async def test_anonymous_poll_is_a_401_json_error(make_harness: MakeHarness) -> None:
    response = await (await client_for(make_harness(), None)).get(URL)
    assert response.status_code == 401
    assert response.json() == {"error": "Sign in first."}


async def test_poll_equals_the_socket_snapshot_and_answers_304_until_it_changes(
    make_harness: MakeHarness, befriend: Callable[[User, User], None], alice: User, bob: User, carol: User
) -> None:
    await database_sync_to_async(befriend)(alice, bob)
    await FriendRequest.objects.acreate(from_user=carol, to_user=alice)
    harness = make_harness(grace_s=60)
    await harness.presence.stream_started(
        bob.pk, started_at=dt.datetime(2026, 1, 2, tzinfo=dt.UTC), denoise=True, atten_lim_db=100.0
    )
    client = await client_for(harness, alice)
    _, snapshot = await harness.join(alice)

    first = await client.get(URL)
    assert first.status_code == 200
    assert first["Content-Type"] == "application/json"
    assert first.json() == snapshot
    etag = first["ETag"]

    for header in (etag, f'"other", {etag}', f"W/{etag}"):
        again = await client.get(URL, headers={"If-None-Match": header})
        assert again.status_code == 304
        assert again["ETag"] == etag
        assert again.content == b""

    await harness.join(bob)  # bob comes online: the content, hence the ETag, changes
    changed = await client.get(URL, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed["ETag"] != etag
    assert changed.json()["friends"][0]["is_online"] is True


async def test_other_methods_are_a_405_json_error(make_harness: MakeHarness, alice: User) -> None:
    response = await (await client_for(make_harness(), alice)).post(URL, {}, content_type="application/json")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD, OPTIONS"
    assert "error" in response.json()


async def test_unreachable_store_is_a_503_json_error(
    make_harness: MakeHarness, befriend: Callable[[User, User], None], alice: User, bob: User
) -> None:
    await database_sync_to_async(befriend)(alice, bob)
    harness = make_harness(store=RedisStore("redis://127.0.0.1:1/0", "unreachable", "pid"))
    response = await (await client_for(harness, alice)).get(URL)
    assert response.status_code == 503
    assert response.json()["error"].endswith(".")
