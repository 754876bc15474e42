"""Several real Daphne processes on one database and one Redis, listeners through a real Janus:
any request may reach any process (inside the test network namespace, as every WebRTC test)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.conf import settings
from django.test import Client

from streams.models import Recording
from testing import peers
from testing.cluster import WsClient
from testing.daphne import url_of_test_database
from testing.janus import JanusServer, start_janus
from testing.quality import heard_pesq
from testing.scale import ScaleCluster, start_cluster
from users.models import User

pytestmark = [pytest.mark.webrtc, pytest.mark.django_db(transaction=True)]
A, B, C = 0, 1, 2  # A and B hand listeners to Janus; C serves its own (the in-process hub)
TAIL_S = 0.5  # the engine's delay and the network's, with room to spare


@pytest.fixture
def make_cluster(
    janus: JanusServer, redis_url: str, media_root: Path, tmp_path: Path, transactional_db: None
) -> Iterator[Callable[..., ScaleCluster]]:
    """Processes on the test database and Redis, the first `processes - without_janus` told
    about the test's Janus; stopped at the end."""
    made: list[ScaleCluster] = []

    def make(processes: int, without_janus: int = 0) -> ScaleCluster:
        made.append(
            start_cluster(
                tmp_path,
                url_of_test_database(),
                redis_url,
                media_root,
                processes=processes,
                janus=janus,
                without_janus=without_janus,
                PRESENCE_TTL_S="3",
                PRESENCE_HEARTBEAT_S="0.5",
            )
        )
        return made[-1]

    yield make
    for cluster in made:
        cluster.stop()


@pytest.fixture(autouse=True)
async def _close_connections() -> AsyncIterator[None]:
    yield
    await peers.close_db_connections()  # the async ORM's, so PostgreSQL can drop the test database


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
    make_cluster: Callable[..., ScaleCluster], keys: dict[str, str], audio_file: Any, client_pcs: list[Any]
) -> None:
    cluster = make_cluster(3, without_janus=1)
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
    assert through_janus > 2.2  # far cleaner than the input's 1.3
    # Janus costs the listener nothing: within 0.15 of the in-process path (or better: on a
    # loaded machine the in-process hub's loop falls behind first, Janus runs apart from it).
    assert through_janus >= in_process - 0.15, (through_janus, in_process)
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


async def _next_of(socket: WsClient, kind: str, within: float, **fields: Any) -> dict[str, Any]:
    """The next message of `kind` (with these fields) on a page's socket; others are skipped."""
    async with asyncio.timeout(within):
        while True:
            message = await socket.next(within)
            if message.get("type") == kind and all(message.get(k) == v for k, v in fields.items()):
                return message


async def test_a_killed_owner_is_reaped_while_the_other_process_serves_on(
    make_cluster: Callable[..., ScaleCluster], keys: dict[str, str], audio_file: Any, client_pcs: list[Any]
) -> None:
    cluster = make_cluster(2)  # every process of a deployment knows Janus: any of them may reap
    noisy = peers.read_wav(audio_file("noisy_snr0"))
    alice_a, bob_b = cluster.api(A, keys["alice"]), cluster.api(B, keys["bob"])
    carol_b, dave_b = cluster.api(B, keys["carol"]), cluster.api(B, keys["dave"])
    bob_socket = await WsClient.connect(cluster.servers[B].port, "/ws/presence/", f"sessionid={keys['bob']}")
    await _next_of(bob_socket, "snapshot", 10)
    alice_track = peers.ArrayTrack(noisy, loop=True)
    await _go_live(alice_a, alice_a, alice_track, client_pcs)
    await _next_of(bob_socket, "streaming_status", 10, username="alice", is_streaming=True)
    bob_pc, bob_heard = await _listen(bob_b, bob_b, "alice", client_pcs)
    await _go_live(carol_b, carol_b, peers.ArrayTrack(noisy, loop=True), client_pcs)
    _, dave_heard = await _listen(dave_b, dave_b, "carol", client_pcs)
    await peers.wait_for(lambda: len(bob_heard.frames) >= 50 and len(dave_heard.frames) >= 50, timeout=20)

    await asyncio.to_thread(cluster.servers[A].kill)
    streamed, killed_at = alice_track.sent_s, time.monotonic()
    # Within the heartbeat's TTL (3 s here), B reaps A: bob's page hears alice is not live, his
    # Janus connection is hung up, and her recording is finished as recovered.
    await _next_of(bob_socket, "streaming_status", 10, username="alice", is_streaming=False)
    await _within(10, lambda: bob_pc.connectionState in ("closed", "failed"), "bob told by Janus")
    assert time.monotonic() - killed_at < 10

    async def recovered() -> bool:
        return await Recording.objects.filter(
            owner__username="alice", finished=True, recovered=True
        ).aexists()

    await _within(10, recovered, "alice's recording finished")
    rec = await Recording.objects.aget(owner__username="alice")
    assert streamed - 1.5 <= rec.duration_s <= streamed + 0.5
    # B served carol's stream to dave all along.
    frames_at_kill = len(dave_heard.frames)
    await peers.wait_for(lambda: len(dave_heard.frames) >= frames_at_kill + 100, timeout=10)
    assert np.diff(dave_heard.arrivals).max() < 0.5
    status, stream = await dave_b.acall("GET", "/api/stream/status/carol/")
    assert (status, stream["is_streaming"], stream["listeners"]) == (200, True, 1)
    assert (await carol_b.acall("POST", "/api/stream/stop/"))[0] == 200
    await asyncio.gather(bob_heard.stop(), dave_heard.stop(), bob_socket.close())


async def test_janus_down_at_go_live_then_killed_mid_stream(
    redis_url: str,
    media_root: Path,
    tmp_path: Path,
    keys: dict[str, str],
    audio_file: Any,
    client_pcs: list[Any],
) -> None:
    janus = start_janus(tmp_path / "janus-1")
    cluster = start_cluster(
        tmp_path,
        url_of_test_database(),
        redis_url,
        media_root,
        processes=2,
        janus=janus,
        MAX_LISTENERS_PER_STREAM="1",
    )
    restarted: JanusServer | None = None
    try:
        alice, bob = cluster.api(A, keys["alice"]), cluster.api(B, keys["bob"])
        janus.stop()
        # Going live without Janus: a clear refusal, and nothing half made.
        status, body = await alice.acall("POST", "/api/stream/start/", {})
        assert status == 503
        assert "Janus" in body["error"]
        assert not await Recording.objects.aexists()
        assert not (await User.objects.aget(username="alice")).is_streaming
        assert (await bob.acall("GET", "/api/stream/status/alice/"))[1]["is_streaming"] is False

        restarted = start_janus(tmp_path / "janus-2", like=janus)
        track = peers.ArrayTrack(peers.read_wav(audio_file("noisy_snr0")), loop=True)
        await _go_live(alice, alice, track, client_pcs)
        page = await WsClient.connect(
            cluster.servers[B].port, "/ws/stream/alice/", f"sessionid={keys['bob']}"
        )
        await _next_of(page, "stream_state", 10)
        _, heard = await _listen(bob, bob, "alice", client_pcs)
        await peers.wait_for(lambda: len(heard.frames) >= 50, timeout=20)
        status, full = await bob.acall("POST", "/api/webrtc/listen/alice/", {})  # a second tab
        assert (status, full["error"]) == (503, "This stream already has 1 listeners; try again later.")

        # Janus dies mid-stream: bob's page is told; alice's stream and recording go on.
        restarted.kill()
        await _next_of(page, "listening", 10, available=False)
        before = track.sent_s
        await peers.wait_for(lambda: track.sent_s >= before + 3, timeout=10)
        status, stream = await bob.acall("GET", "/api/stream/status/alice/")
        assert (status, stream["is_streaming"]) == (200, True)
        streamed = track.sent_s
        assert (await alice.acall("POST", "/api/stream/stop/"))[0] == 200
        rec = await Recording.objects.aget(owner__username="alice")
        assert rec.finished
        assert streamed - 1.0 <= rec.duration_s <= streamed + 0.5
        await asyncio.gather(heard.stop(), page.close())
    finally:
        cluster.stop()
        for server in (janus, restarted):
            if server is not None:
                server.stop()


async def test_without_janus_the_owner_serves_listeners_whatever_process_they_reach(
    make_cluster: Callable[..., ScaleCluster], keys: dict[str, str], audio_file: Any, client_pcs: list[Any]
) -> None:
    cluster = make_cluster(2, without_janus=2)
    alice_a, bob_b = cluster.api(A, keys["alice"]), cluster.api(B, keys["bob"])
    await _go_live(
        alice_a, alice_a, peers.ArrayTrack(peers.read_wav(audio_file("noisy_snr0")), loop=True), client_pcs
    )
    # bob's listen and answer reach B, which forwards both to A: A's own peer serves him.
    pc, heard = await _listen(bob_b, bob_b, "alice", client_pcs)
    await peers.wait_for(lambda: len(heard.frames) >= 50, timeout=20)
    assert cluster.servers[A].metrics()["rd_listeners"] == 1
    assert cluster.servers[B].metrics()["rd_listeners"] == 0
    status, stream = await bob_b.acall("GET", "/api/stream/status/alice/")  # forwarded: A's live count
    assert (status, stream["listeners"]) == (200, 1)
    status, left = await bob_b.acall("POST", "/api/webrtc/listen/alice/leave/", {"listener_id": "not-bobs"})
    assert (status, left) == (200, {"left": False})

    # The unfriending reaches A's hub through the owner group: bob is cut within a second.
    status, _ = await bob_b.acall("DELETE", "/api/friends/alice/")
    assert status == 204
    await _within(1.0, lambda: pc.connectionState in ("closed", "failed"), "bob cut off")
    assert (await alice_a.acall("POST", "/api/stream/stop/"))[0] == 200
    await heard.stop()
