"""Several real Daphne processes on one database and one Redis, listeners through a real Janus:
any request may reach any process (inside the test network namespace, as every WebRTC test)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.conf import settings
from django.test import Client

from testing import peers
from testing.daphne import url_of_test_database
from testing.janus import JanusServer
from testing.quality import heard_pesq
from testing.scale import ScaleCluster, start_cluster
from users.models import User

pytestmark = [pytest.mark.webrtc, pytest.mark.django_db(transaction=True)]
A, B, C = 0, 1, 2  # A and B hand listeners to Janus; C serves its own (the in-process hub)
TAIL_S = 0.5  # the engine's delay and the network's, with room to spare


@pytest.fixture
def cluster(
    janus: JanusServer, redis_url: str, media_root: Path, tmp_path: Path, transactional_db: None
) -> Iterator[ScaleCluster]:
    running = start_cluster(
        tmp_path,
        url_of_test_database(),
        redis_url,
        media_root,
        processes=3,
        janus=janus,
        without_janus=1,
        PRESENCE_TTL_S="3",
        PRESENCE_HEARTBEAT_S="0.5",
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def keys(make_user: Callable[[str], User], befriend: Any) -> dict[str, str]:
    """alice and bob are friends, carol and dave are friends; their session keys."""
    users = {name: make_user(name) for name in ("alice", "bob", "carol", "dave")}
    befriend(users["alice"], users["bob"])
    befriend(users["carol"], users["dave"])
    found = {}
    for name, user in users.items():
        client = Client()
        client.force_login(user)
        found[name] = client.cookies[settings.SESSION_COOKIE_NAME].value
    return found


async def _go_live(start: peers.HttpApi, offer_to: peers.HttpApi, track: Any, pcs: list[Any]) -> str:
    """Start through one process, send the broadcaster's offer through another."""
    status, body = await start.acall("POST", "/api/stream/start/", {"denoise": True})
    assert status == 201, body
    pc, offer = await peers.broadcaster(track)
    pcs.append(pc)
    status, answer = await offer_to.acall(
        "POST", "/api/webrtc/offer/", {"session_id": body["session_id"], **offer}
    )
    assert status == 200, answer
    await peers.accept(pc, answer)
    return body["session_id"]


async def _listen(offer_from: peers.HttpApi, answer_to: peers.HttpApi, owner: str, pcs: list[Any]) -> Any:
    """Listen through one process, answer through another."""
    status, offer = await offer_from.acall("POST", f"/api/webrtc/listen/{owner}/", {})
    assert status == 200, offer
    pc, answer, capture = await peers.listener(offer)
    pcs.append(pc)
    status, body = await answer_to.acall(
        "POST", f"/api/webrtc/listen/{owner}/answer/", {"listener_id": offer["listener_id"], **answer}
    )
    assert status == 200, body
    return pc, capture


async def _within(seconds: float, check: Callable[[], Any], what: str) -> float:
    """Seconds until `check()` (sync or async) held; fails after `seconds` (other processes give
    no event to wait on)."""
    began = time.monotonic()
    try:
        await peers.wait_for(check, timeout=seconds, interval=0.02)
    except TimeoutError:
        raise AssertionError(f"{what}: not within {seconds:g} s") from None
    return time.monotonic() - began


async def test_one_stream_heard_controlled_cut_and_stopped_through_other_processes(
    cluster: ScaleCluster, keys: dict[str, str], audio_file: Any, client_pcs: list[Any]
) -> None:
    noisy = peers.read_wav(audio_file("noisy_snr0"))
    clean = peers.read_wav(audio_file("clean_freesound_33711")).astype(np.float32) / 32768.0
    alice_a, alice_b = cluster.api(A, keys["alice"]), cluster.api(B, keys["alice"])
    bob_a, bob_b = cluster.api(A, keys["bob"]), cluster.api(B, keys["bob"])
    carol, dave = cluster.api(C, keys["carol"]), cluster.api(C, keys["dave"])

    # alice goes live through A, her offer reaches B (forwarded to A); bob listens through B
    # and answers through A: Janus serves him. carol and dave: the in-process hub on C.
    status, started = await alice_a.acall("POST", "/api/stream/start/", {"denoise": True})
    assert status == 201, started
    bob_pc, bob_heard = await _listen(bob_b, bob_a, "alice", client_pcs)
    alice_track, carol_track = peers.ArrayTrack(noisy), peers.ArrayTrack(noisy)
    status, body = await carol.acall("POST", "/api/stream/start/", {"denoise": True})
    assert status == 201, body
    _, dave_heard = await _listen(dave, dave, "carol", client_pcs)
    pc, offer = await peers.broadcaster(carol_track)
    client_pcs.append(pc)
    status, answer = await carol.acall(
        "POST", "/api/webrtc/offer/", {"session_id": body["session_id"], **offer}
    )
    assert status == 200, answer
    await peers.accept(pc, answer)
    pc, offer = await peers.broadcaster(alice_track)
    client_pcs.append(pc)
    status, answer = await alice_b.acall(
        "POST", "/api/webrtc/offer/", {"session_id": started["session_id"], **offer}
    )
    assert status == 200, answer
    await peers.accept(pc, answer)

    wanted = len(noisy) + int(TAIL_S * peers.RATE)
    await peers.wait_for(lambda: min(bob_heard.count, dave_heard.count) * peers.FRAME >= wanted, timeout=60)
    through_janus = heard_pesq(bob_heard.audio(), clean, peers.RATE)
    in_process = heard_pesq(dave_heard.audio(), clean, peers.RATE)
    print(f"PESQ-WB through Janus {through_janus:.2f}, in-process {in_process:.2f}")
    assert in_process > 2.2  # far cleaner than the input's 1.3
    assert abs(through_janus - in_process) <= 0.15, (through_janus, in_process)
    status, listeners = await alice_a.acall("GET", "/api/stream/status/alice/")
    assert (status, listeners["listeners"]) == (200, 1)  # Janus's count, as the owner reads it

    # Settings through B apply on A's stream within a second.
    status, changed = await alice_b.acall("PATCH", "/api/stream/settings/", {"denoise": False})
    assert (status, changed["denoise"]) == (200, False)

    async def applied() -> bool:
        return (await alice_a.acall("GET", "/api/stream/status/alice/"))[1]["denoise"] is False

    await _within(1.0, applied, "the new setting on A")

    # An unfriending through B cuts bob's Janus connection within a second.
    status, _ = await alice_b.acall("DELETE", "/api/friends/bob/")
    assert status == 204
    await _within(1.0, lambda: bob_pc.connectionState in ("closed", "failed"), "bob cut off")

    # A stop through B ends the stream on A; the recording is listed, finished.
    status, stopped = await alice_b.acall("POST", "/api/stream/stop/")
    assert (status, stopped) == (200, {"stopped": True})
    status, stream = await alice_a.acall("GET", "/api/stream/status/alice/")
    assert (status, stream["is_streaming"]) == (200, False)
    status, rows = await alice_b.acall("GET", "/api/recordings/alice/")
    assert status == 200
    assert [row["finished"] for row in rows] == [True]  # type: ignore[index]
    assert rows[0]["duration_s"] >= len(noisy) / peers.RATE - 0.5  # type: ignore[index]
    assert (await carol.acall("POST", "/api/stream/stop/"))[0] == 200
    await asyncio.gather(bob_heard.stop(), dave_heard.stop())
