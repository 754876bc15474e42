"""SIGKILL the server mid-stream, start it again: the recording survives, finished."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.test import Client

from streams.models import Recording
from testing import peers
from testing.daphne import DaphneServer, database_url
from users.models import User

pytestmark = [pytest.mark.webrtc, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def server(transactional_db: None, media_root: Path, tmp_path: Path) -> Iterator[DaphneServer]:
    """A daphne subprocess on the test database and media folder (killed at teardown)."""
    env = {
        "DATABASE_URL": database_url(settings.DATABASES["default"]),
        "MEDIA_ROOT": str(media_root),
        # Presence's reaper clears a dead process's live flags after its TTL (with Redis).
        "PRESENCE_TTL_S": "2",
        "PRESENCE_HEARTBEAT_S": "0.5",
    }
    daphne = DaphneServer(env, tmp_path / "daphne.log")
    try:
        yield daphne
    finally:
        daphne.kill()


@pytest.fixture(autouse=True)
async def _close_connections() -> AsyncIterator[None]:
    yield
    await peers.close_db_connections()


def _session_key(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


async def test_recording_survives_a_killed_server(
    server: DaphneServer, alice: User, bob: User, befriend: Any, audio_file: Any, client_pcs: list
) -> None:
    await database_sync_to_async(befriend)(alice, bob)
    await asyncio.to_thread(server.start)
    api = peers.HttpApi(server.base_url, await database_sync_to_async(_session_key)(alice))
    track = peers.ArrayTrack(peers.read_wav(audio_file("noisy_snr0")))
    await _go_live(api, track, client_pcs, {"denoise": True})
    await peers.wait_for(lambda: track.sent_s >= 3.5, timeout=20)

    server.kill()
    streamed = track.sent_s
    await asyncio.to_thread(server.start)  # start-up recovers what the crash left open

    await _until(lambda: Recording.objects.filter(owner=alice, finished=True).aexists())
    rec = await Recording.objects.aget(owner=alice)
    assert rec.recovered
    assert streamed - 1.3 <= rec.duration_s <= streamed + 0.1  # at most ~1 s lost
    friend = peers.HttpApi(server.base_url, await database_sync_to_async(_session_key)(bob))
    status, listing = await friend.acall("GET", "/api/recordings/alice/")
    assert status == 200
    assert [(r["id"], r["finished"]) for r in listing] == [(rec.pk, True)]  # type: ignore[index]
    await _until(lambda: User.objects.filter(pk=alice.pk, is_streaming=False).aexists())


async def _go_live(api: peers.HttpApi, track: peers.ArrayTrack, pcs: list, settings: dict) -> None:
    """Start a stream on the server and connect a broadcaster peer playing `track`."""
    status, body = await api.acall("POST", "/api/stream/start/", settings)
    assert status == 201, body
    pc, offer = await peers.broadcaster(track)
    pcs.append(pc)
    payload = {"session_id": body["session_id"], **offer}
    status, answer = await api.acall("POST", "/api/webrtc/offer/", payload)
    assert status == 200, answer
    await peers.accept(pc, answer)


async def _until(check: Any, within: float = 15.0) -> None:
    """Poll an async database check (the other process gives no event)."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.1)


async def test_a_clean_shutdown_finalizes_the_recording(
    server: DaphneServer, alice: User, audio_file: Any, client_pcs: list
) -> None:
    await asyncio.to_thread(server.start)
    api = peers.HttpApi(server.base_url, await database_sync_to_async(_session_key)(alice))
    track = peers.ArrayTrack(peers.read_wav(audio_file("noisy_snr0")))
    await _go_live(api, track, client_pcs, {})
    await peers.wait_for(lambda: track.sent_s >= 2.0, timeout=20)

    await asyncio.to_thread(server.stop)  # SIGTERM: Daphne's shutdown runs Services.aclose()
    assert server.proc is not None
    assert server.proc.returncode == 0
    rec = await Recording.objects.aget(owner=alice)
    assert (rec.finished, rec.recovered) == (True, False)
    assert rec.duration_s >= 1.0
    assert not (await User.objects.aget(pk=alice.pk)).is_streaming
