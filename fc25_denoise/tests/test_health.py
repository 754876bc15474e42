"""GET /healthz: JSON 200 when the database and the channel layer answer, 503 naming what broke."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable

import pytest
from django.db import OperationalError
from django.test import override_settings

from fc25_denoise import health
from fc25_denoise.services import Services
from testing.peers import ServicesClient

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
