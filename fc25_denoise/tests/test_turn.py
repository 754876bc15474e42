"""TURN with the credentials the server issues, against coturn run from the shipped template.

coturn accepts exactly the credentials `fc25_denoise.ice` hands out and refuses wrong, expired
or foreign-secret ones; its relay reaches the app host and nothing else; and a listener
allowed only relay candidates hears the denoised stream through it (inside scripts/netns-run).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf
from aioice import stun, turn
from aiortc import RTCConfiguration, RTCIceTransportPolicy, RTCPeerConnection
from channels.db import database_sync_to_async
from pytest_django.fixtures import Settings

from fc25_denoise.ice import ice_servers_for, turn_credential
from streams.live.webrtc import ice_servers
from testing import peers
from testing.audio_checks import RATE, offline_denoise
from testing.browser import block_shuffled, envelope_db, tracked_correlation
from testing.processes import Coturn, expected_password
from users.models import User

pytestmark = pytest.mark.webrtc
CLIP_S = 5.0


class Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait((data, addr))


@pytest.fixture
async def turn_client(coturn: Coturn) -> AsyncIterator[Callable[..., Any]]:
    """Opens raw TURN client connections to coturn (aioice); all closed at teardown."""
    opened: list[asyncio.BaseTransport] = []

    async def connect(username: str, password: str, transport: str = "udp") -> turn.TurnClientMixin:
        loop = asyncio.get_running_loop()
        server = (coturn.host, coturn.port)

        def factory() -> Any:
            cls = turn.TurnClientTcpProtocol if transport == "tcp" else turn.TurnClientUdpProtocol
            return cls(server, username=username, password=password, lifetime=600, channel_refresh_time=300)

        if transport == "tcp":
            sock, protocol = await loop.create_connection(factory, *server)
        else:
            sock, protocol = await loop.create_datagram_endpoint(factory, remote_addr=server)
        opened.append(sock)
        return protocol

    yield connect
    for sock in opened:
        sock.close()


@pytest.fixture
def turn_settings(settings: Settings, coturn: Coturn) -> Coturn:
    settings.TURN_SECRET = coturn.secret
    settings.TURN_URLS = coturn.urls()
    settings.TURN_TTL_S = 600
    settings.ICE_SERVERS = []
    return coturn


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_issued_credentials_open_a_relay_to_the_app_host(
    turn_settings: Coturn, turn_client: Callable[..., Any], transport: str
) -> None:
    entry = ice_servers_for(None)[-1]
    assert entry["urls"] == turn_settings.urls()
    client = await turn_client(entry["username"], entry["credential"], transport)
    relayed = await client.connect()
    assert relayed[0] == turn_settings.host
    assert 50000 <= relayed[1] <= 50999  # the template's relay range

    loop = asyncio.get_running_loop()
    peer_sock, peer = await loop.create_datagram_endpoint(Inbox, local_addr=(turn_settings.host, 0))
    try:
        await client.send_data(b"relayed hello", peer_sock.get_extra_info("sockname"))
        data, source = await asyncio.wait_for(peer.received.get(), 5)
    finally:
        peer_sock.close()
    assert (data, source) == (b"relayed hello", relayed)


async def test_relay_refuses_peers_other_than_the_app_host(
    turn_settings: Coturn, turn_client: Callable[..., Any]
) -> None:
    entry = ice_servers_for(None)[-1]
    client = await turn_client(entry["username"], entry["credential"])
    await client.connect()
    for peer in [("127.0.0.1", 9), ("192.168.1.10", 9), ("8.8.8.8", 53)]:
        with pytest.raises(stun.TransactionFailed) as refused:
            await client.channel_bind(0x4000, peer)
        assert refused.value.response.attributes["ERROR-CODE"][0] == 403


def _wrong_password(secret: str) -> tuple[str, str]:
    cred = turn_credential(secret, "7", ttl_s=600)
    return cred.username, "not-the-password"


def _expired(secret: str) -> tuple[str, str]:
    cred = turn_credential(secret, "7", ttl_s=60, now=time.time() - 3600)
    return cred.username, cred.credential


def _other_secret(secret: str) -> tuple[str, str]:
    cred = turn_credential("another-deployment-secret", "7", ttl_s=600)
    return cred.username, cred.credential


def _no_expiry(secret: str) -> tuple[str, str]:
    return "7", expected_password(secret, "7")


@pytest.mark.parametrize("make", [_wrong_password, _expired, _other_secret, _no_expiry])
async def test_coturn_refuses_credentials_the_server_did_not_issue(
    coturn: Coturn, turn_client: Callable[..., Any], make: Callable[[str], tuple[str, str]]
) -> None:
    client = await turn_client(*make(coturn.secret))
    with pytest.raises(stun.TransactionFailed) as refused:
        await client.connect()
    assert refused.value.response.attributes["ERROR-CODE"][0] == 401


@pytest.fixture
def clip(audio_file: Any, tmp_path: Path) -> Path:
    """The first CLIP_S seconds of the noisy speech, as a WAV file for aiortc's MediaPlayer."""
    path = tmp_path / "noisy-clip.wav"
    sf.write(path, peers.read_wav(audio_file("noisy_snr0"))[: int(CLIP_S * RATE)], RATE, subtype="PCM_16")
    return path


def relay_only(servers: list[dict[str, Any]]) -> RTCConfiguration:
    return RTCConfiguration(iceServers=ice_servers(servers), iceTransportPolicy=RTCIceTransportPolicy.RELAY)


def selected_local_type(pc: RTCPeerConnection) -> str:
    # aiortc has no getStats() pair selection for this; aioice keeps the nominated pair.
    ice = pc.getTransceivers()[0].receiver.transport.transport
    return ice._connection._nominated[1].local_candidate.type


@pytest.mark.django_db(transaction=True)
async def test_relay_only_listener_hears_the_denoised_stream_through_turn(
    turn_settings: Coturn, live: Any, alice: User, bob: User, befriend: Any, clip: Path, client_pcs: list[Any]
) -> None:
    await database_sync_to_async(befriend)(alice, bob)
    broadcaster, listener = await peers.signed_in(live, alice), await peers.signed_in(live, bob)
    await peers.go_live(broadcaster, str(clip), client_pcs)

    # The relay is opened with bob's own short-lived credentials, fetched like a page does.
    servers = (await listener.get("/api/ice-servers/")).json()["iceServers"]
    assert servers[-1]["username"].endswith(f":{bob.pk}")
    response = await listener.post("/api/webrtc/listen/alice/", {}, content_type=peers.JSON)
    assert response.status_code == 200, response.content
    offer = response.json()
    # The server's own peer also got TURN credentials (identity "server") and a relay.
    assert " typ relay" in offer["sdp"]
    pc, answer, capture = await peers.listener(offer, configuration=relay_only(servers))
    client_pcs.append(pc)
    candidates = [line for line in answer["sdp"].splitlines() if line.startswith("a=candidate")]
    assert candidates
    assert all(" typ relay" in line for line in candidates)
    body = {"listener_id": offer["listener_id"], **answer}
    response = await listener.post("/api/webrtc/listen/alice/answer/", body, content_type=peers.JSON)
    assert response.status_code == 200, response.content

    await peers.wait_for(lambda: len(capture.frames) * 0.02 >= CLIP_S + 0.5, timeout=CLIP_S + 15)
    assert selected_local_type(pc) == "relay"
    await peers.stop(broadcaster)

    # What came through the relay is the stream: its level follows the denoised clip half a
    # second at a time (a loaded machine drops and stretches frames), clearly better than the
    # same half-seconds shuffled.
    reference = envelope_db(await asyncio.to_thread(offline_denoise, peers.read_wav(str(clip))))
    heard = envelope_db(capture.audio())
    follows = tracked_correlation(heard, reference)
    assert follows >= 0.75
    assert tracked_correlation(heard, block_shuffled(reference)) < follows - 0.15


async def test_coturn_refuses_tcp_relays(coturn: Coturn, turn_client: Callable[..., Any]) -> None:
    cred = turn_credential(coturn.secret, "7", ttl_s=600)
    client = await turn_client(cred.username, cred.credential, transport="tcp")
    allocate = stun.Message(message_method=stun.Method.ALLOCATE, message_class=stun.Class.REQUEST)
    allocate.attributes["LIFETIME"] = 600
    allocate.attributes["REQUESTED-TRANSPORT"] = 0x06000000  # TCP (RFC 6062), as aioice packs it
    with pytest.raises(stun.TransactionFailed) as refused:
        await client.request_with_retry(allocate)
    assert refused.value.response.attributes["ERROR-CODE"][0] in (403, 442)


async def test_one_credential_holds_at_most_the_user_quota(
    coturn: Coturn, turn_client: Callable[..., Any]
) -> None:
    cred = turn_credential(coturn.secret, "7", ttl_s=600)
    for _ in range(10):  # user-quota in deploy/coturn/turnserver.conf
        await (await turn_client(cred.username, cred.credential)).connect()
    with pytest.raises(stun.TransactionFailed) as refused:
        await (await turn_client(cred.username, cred.credential)).connect()
    assert refused.value.response.attributes["ERROR-CODE"][0] == 486  # allocation quota reached
    other = turn_credential(coturn.secret, "8", ttl_s=600)
    await (await turn_client(other.username, other.credential)).connect()  # others unaffected
