"""Listeners in real WebRTC (inside scripts/netns-run): access is checked for as long as they
listen, slots are not held by connections that never come up, one user cannot take them all."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiortc import RTCPeerConnection
from channels.db import database_sync_to_async
from pytest_django.fixtures import Settings

from fc25_denoise.errors import Unavailable
from fc25_denoise.services import Services
from streams.cluster.node import ClusterNode
from streams.cluster.router import StreamRouter
from streams.live.registry import StreamRegistry
from streams.live.session import LiveSession, Timing
from streams.live.webrtc import parse_offer
from streams.presence.service import Presence
from testing import peers
from users.models import User

pytestmark = [pytest.mark.webrtc, pytest.mark.django_db(transaction=True)]


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * peers.RATE)) / peers.RATE
    return (6000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)


def _gone(pc: RTCPeerConnection) -> bool:
    return pc.connectionState in ("closed", "failed")


@pytest.fixture
async def app(
    transactional_db: None, make_presence: Callable[..., Presence], media_root: Path
) -> AsyncIterator[Services]:
    """Services built as the running app builds them (`Services.create`: with this process's node)."""
    presence = make_presence()
    node = ClusterNode.for_process(presence)
    services = Services(presence=presence, registry=StreamRegistry(events=presence, hooks=node), node=node)
    await services.start()
    try:
        yield services
        assert services.registry.sessions == {}, "the test left a live session in the registry"
        assert services.registry.open_peer_connections() == 0, "the test left a peer connection open"
    finally:
        await services.aclose()
        await peers.close_db_connections()


async def _broadcast(registry: StreamRegistry, user: User, pcs: list[Any]) -> LiveSession:
    session = await registry.start_stream(user)
    pc, offer = await peers.broadcaster(peers.ArrayTrack(_tone(30)))
    pcs.append(pc)
    answer = await registry.accept_offer(user, session.session_id, parse_offer(offer, "broadcast"))
    await peers.accept(pc, {"sdp": answer.sdp, "type": answer.type})
    return session


async def _listen(
    registry: StreamRegistry, user: User, owner: str, pcs: list[Any], *, complete: bool = True
) -> tuple[RTCPeerConnection | None, peers.Capture | None]:
    """The listen flow (the server offers); with complete=False nobody ever answers."""
    router = StreamRouter(registry)
    offer = await router.listen(user, owner)
    if not complete:
        return None, None
    pc, answer, capture = await peers.listener(offer)
    pcs.append(pc)
    await router.answer(user, owner, {"listener_id": offer["listener_id"], **answer})
    return pc, capture


@pytest.mark.parametrize("who", ["owner", "listener"])
async def test_an_unfriended_listener_is_cut_off_within_a_second(
    app: Services, alice: User, bob: User, carol: User, befriend: Any, client_pcs: list, who: str
) -> None:
    await database_sync_to_async(befriend)(alice, bob)
    await database_sync_to_async(befriend)(alice, carol)
    broadcaster = await peers.signed_in(app, alice)
    await peers.go_live(broadcaster, peers.ArrayTrack(_tone(30)), client_pcs)
    bobs = await peers.signed_in(app, bob)
    heard = await peers.listen(bobs, "alice", client_pcs)
    other = await peers.listen(await peers.signed_in(app, carol), "alice", client_pcs)
    session = app.registry.session_for(alice.pk)
    assert session is not None
    await peers.wait_for(lambda: heard.count >= 10 and other.count >= 10 and session.listener_count == 2, 10)
    bob_pc = client_pcs[1]

    unfriending = broadcaster if who == "owner" else bobs
    response = await unfriending.delete("/api/friends/bob/" if who == "owner" else "/api/friends/alice/")
    assert response.status_code == 204
    # Within a second: bob's connection is closed on both ends and the count has dropped...
    await peers.wait_for(lambda: _gone(bob_pc) and session.listener_count == 1, timeout=1.0)
    assert heard.task is not None
    await heard.task  # ...and his track has ended: no more RTP reaches him.
    assert app.registry.open_peer_connections() == 2  # alice's broadcaster and carol
    before = other.count
    await peers.wait_for(lambda: other.count >= before + 10, timeout=5)  # carol still hears
    await peers.stop(broadcaster)


async def test_a_listener_that_never_connects_frees_its_slot(
    make_registry: Any,
    alice: User,
    bob: User,
    carol: User,
    befriend: Any,
    client_pcs: list,
    settings: Settings,
) -> None:
    settings.MAX_LISTENERS_PER_STREAM = 1
    registry = await make_registry(timing=Timing(listener_connect_s=0.5))
    await database_sync_to_async(befriend)(alice, bob)
    await database_sync_to_async(befriend)(alice, carol)
    session = await _broadcast(registry, alice, client_pcs)
    await _listen(registry, bob, "alice", client_pcs, complete=False)  # an offer never answered
    with pytest.raises(Unavailable):  # the slot is taken...
        await _listen(registry, carol, "alice", client_pcs)
    assert registry.open_peer_connections() == 2
    await peers.wait_for(lambda: registry.open_peer_connections() == 1, timeout=5)  # ...until the deadline
    _, capture = await _listen(registry, carol, "alice", client_pcs)
    assert capture is not None
    await peers.wait_for(lambda: capture.count >= 10 and session.listener_count == 1, timeout=10)
    await registry.stop_stream(alice)


async def test_one_user_holds_at_most_a_few_connections_the_newest_replacing_the_oldest(
    make_registry: Any, alice: User, bob: User, befriend: Any, client_pcs: list, settings: Settings
) -> None:
    settings.LISTENER_CONNECTIONS_PER_USER = 2
    settings.MAX_LISTENERS_PER_STREAM = 2
    registry = await make_registry()
    await database_sync_to_async(befriend)(alice, bob)
    session = await _broadcast(registry, alice, client_pcs)
    tabs: list[tuple[Any, Any]] = []
    for _ in range(3):  # a third tab, once the first two hear the stream
        tabs.append(await _listen(registry, bob, "alice", client_pcs))
        await peers.wait_for(lambda: tabs[-1][1].count >= 1, timeout=10)
    (first, _), (_, second), (_, third) = tabs
    await peers.wait_for(lambda: _gone(first), timeout=5)  # the oldest was closed for it
    await peers.wait_for(lambda: second.count >= 10 and third.count >= 10, timeout=10)
    assert session.listener_count == 2
    assert registry.open_peer_connections() == 3  # the broadcaster and bob's two newest
    await registry.stop_stream(alice)
