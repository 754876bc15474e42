"""GET /healthz: JSON 200 when the database and the channel layer answer, 503 naming what broke."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable

import pytest
from django.db import OperationalError
from django.test import override_settings

from fc25_denoise import health
from fc25_denoise.services import Services
from streams.presence.redis_store import RedisStore
from testing.peers import ServicesClient
from testing.stack import AppStack

pytestmark = pytest.mark.django_db(transaction=True)
HEALTHY = {"database": "ok", "channel_layer": "ok", "presence": "ok"}


@pytest.fixture
def client(make_services: Callable[..., Services]) -> ServicesClient:
    """A client of the app with this test's Services (presence on Redis when REDIS_URL is set)."""
    return ServicesClient(make_services())


DEAD_REDIS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
    }
}


async def test_healthy_process_answers_200(client: ServicesClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == HEALTHY
    assert "no-cache" in response["Cache-Control"]


async def test_unreachable_channel_layer_answers_503(client: ServicesClient) -> None:
    with override_settings(CHANNEL_LAYERS=DEAD_REDIS):
        response = await client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["channel_layer"].startswith("channel layer error: ")


async def test_database_error_answers_503(client: ServicesClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(health, "_query_database", broken)
    response = await client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"] == {**HEALTHY, "database": "database error: OperationalError"}


@pytest.fixture
async def hung_database(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    # Async, so the release comes before the event loop waits for its executor's threads.
    release = threading.Event()
    monkeypatch.setattr(health, "_query_database", lambda: release.wait(30))
    monkeypatch.setattr(health, "CHECK_TIMEOUT_S", 0.2)
    yield
    release.set()


async def test_hung_database_answers_503_within_the_timeout(
    client: ServicesClient, hung_database: None
) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "no answer within 0.2 s"


async def test_only_get_and_head_are_allowed(client: ServicesClient) -> None:
    assert (await client.head("/healthz")).status_code == 200
    assert (await client.post("/healthz")).status_code == 405


@override_settings(SECURE_SSL_REDIRECT=True, ALLOWED_HOSTS=["testserver"])
async def test_plain_http_monitoring_is_not_redirected(client: ServicesClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/accounts/login/")).status_code == 301


async def test_presence_store_down_answers_503(make_services: Callable[..., Services]) -> None:
    services = make_services(store=RedisStore("redis://127.0.0.1:1/0", "healthz-test", "x"))
    response = await ServicesClient(services).get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["presence"].startswith("presence store error: ")


@pytest.fixture
def stack(make_stack: Callable[..., AppStack]) -> AppStack:
    return make_stack([f"user{i}" for i in range(50)], [])


async def test_healthz_stays_true_with_50_sockets_open(stack: AppStack) -> None:
    """Every open socket's consumer waits on the process's channel-layer receive lock; the check
    must not queue behind them (it answered 503 after 3 s whenever one socket was open)."""
    sockets = [await stack.socket(f"user{i}") for i in range(50)]  # 50 people, one tab each
    for ws in sockets:
        assert (await ws.next())["type"] == "snapshot"
    for _ in range(3):
        status, body = await stack.api("user0").acall("GET", "/healthz")
        assert (status, body["checks"]) == (200, HEALTHY)
        assert body["elapsed_ms"] < 1000
    await asyncio.to_thread(stack.redis.kill)  # and it still tells the truth
    status, body = await stack.api("user0").acall("GET", "/healthz")
    assert status == 503
    assert body["checks"]["channel_layer"] != "ok"
    assert body["checks"]["presence"] != "ok"
