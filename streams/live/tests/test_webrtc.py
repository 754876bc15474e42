"""Offer and answer validation, ICE configuration, the broadcaster's answer and the listener's offer."""

from __future__ import annotations

import asyncio
import os

import pytest
from aioice import stun
from aiortc import RTCIceGatherer, RTCIceServer, RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack
from django.core.exceptions import ImproperlyConfigured

from fc25_denoise.errors import BadRequest, Conflict
from streams.live.webrtc import (
    MAX_SDP_CHARS,
    accept_answer,
    answer_broadcaster,
    ice_servers,
    new_peer_connection,
    offer_listener,
    parse_answer,
    parse_offer,
)

pytestmark = pytest.mark.webrtc


async def _offer(*sections: tuple[str, str]) -> str:
    pc = RTCPeerConnection()
    for kind, direction in sections:
        pc.addTransceiver(kind, direction=direction)
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


def test_ice_servers_from_settings() -> None:
    servers = ice_servers(
        [
            {"urls": "stun:stun.example.org"},
            {"urls": ["turn:t.example.org"], "username": "u", "credential": "p"},
        ]
    )
    assert [s.urls for s in servers] == ["stun:stun.example.org", ["turn:t.example.org"]]
    assert (servers[1].username, servers[1].credential) == ("u", "p")
    assert ice_servers([]) == []
    for bad in ({"urls": "x"}, [{"url": "stun:x"}], ["stun:x"]):
        with pytest.raises(ImproperlyConfigured):
            ice_servers(bad)


async def test_offers_are_checked_for_the_callers_role() -> None:
    send = await _offer(("audio", "sendonly"))
    recv = await _offer(("audio", "recvonly"))
    both = await _offer(("audio", "sendrecv"))
    assert parse_offer({"sdp": send, "type": "offer"}, "broadcast").audio_mid == "0"
    assert parse_offer({"sdp": both, "type": "offer"}, "listen").audio_mid == "0"
    bad = [
        ({"sdp": send, "type": "offer"}, "listen"),
        ({"sdp": recv, "type": "offer"}, "broadcast"),
        ({"sdp": send, "type": "answer"}, "broadcast"),
        ({"sdp": send}, "broadcast"),
        ({"sdp": ["v=0"], "type": "offer"}, "broadcast"),
        ({"sdp": send + "a=x\r\n" * MAX_SDP_CHARS, "type": "offer"}, "broadcast"),
        ({"sdp": send.replace("a=ice-ufrag", "a=x-ufrag"), "type": "offer"}, "broadcast"),
        ({"sdp": send.replace("a=fingerprint", "a=x-fingerprint"), "type": "offer"}, "broadcast"),
        ({"sdp": "m=audio 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96", "type": "offer"}, "broadcast"),
    ]
    for data, role in bad:
        with pytest.raises(BadRequest):
            parse_offer(data, role)  # type: ignore[arg-type]


async def test_broadcaster_answer_receives_audio_only() -> None:
    sdp = await _offer(("audio", "sendonly"), ("video", "sendonly"), ("audio", "sendonly"))
    pc = new_peer_connection([])
    try:
        answer, track = await answer_broadcaster(pc, parse_offer({"sdp": sdp, "type": "offer"}, "broadcast"))
        assert track.kind == "audio"
        directions = [line for line in answer.sdp.splitlines() if line in ("a=recvonly", "a=inactive")]
        assert directions == ["a=recvonly", "a=inactive", "a=inactive"]
    finally:
        await pc.close()


async def test_the_listener_offer_sends_audio_and_never_receives() -> None:
    pc = new_peer_connection([])
    try:
        offer = await offer_listener(pc, AudioStreamTrack())
        sections = [line for line in offer.sdp.splitlines() if line.startswith("m=")]
        assert len(sections) == 1
        assert sections[0].startswith("m=audio")
        assert "a=sendonly" in offer.sdp
        assert "a=sendrecv" not in offer.sdp
        assert "a=candidate:" in offer.sdp  # gathered before it is handed out (no trickle)
    finally:
        await pc.close()


async def test_a_listener_answers_once() -> None:
    server, client = new_peer_connection([]), new_peer_connection([])
    try:
        offer = await offer_listener(server, AudioStreamTrack())
        await client.setRemoteDescription(offer)
        await client.setLocalDescription(await client.createAnswer())
        sdp = parse_answer({"sdp": client.localDescription.sdp, "type": "answer"})
        await accept_answer(server, sdp)
        with pytest.raises(Conflict):
            await accept_answer(server, sdp)
    finally:
        await asyncio.gather(server.close(), client.close())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"sdp": "v=0", "type": "offer"}, '"type" must be "answer"'),
        ({"type": "answer"}, '"sdp" must be'),
        ({"sdp": "x" * 40_000, "type": "answer"}, "longer than"),
        ({"sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "type": "answer"}, "no audio section"),
        ({"sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=recvonly\r\n", "type": "answer"}, "ICE"),
    ],
)
def test_bad_answers_are_bad_requests(body: dict[str, str], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_answer(body)


async def test_an_offer_aiortc_refuses_is_a_bad_request() -> None:
    sdp = await _offer(("audio", "sendonly"))
    no_codecs = "\r\n".join(
        line for line in sdp.split("\r\n") if not line.startswith("a=rtpmap") or "foo" in line
    ).replace("UDP/TLS/RTP/SAVPF 96 9 0 8", "UDP/TLS/RTP/SAVPF 120")
    pc = new_peer_connection([])
    try:
        with pytest.raises(BadRequest):
            await answer_broadcaster(pc, parse_offer({"sdp": no_codecs, "type": "offer"}, "broadcast"))
    finally:
        await pc.close()


class FakeStun(asyncio.DatagramProtocol):
    """A STUN server in the test namespace that answers binding requests and counts them."""

    def __init__(self) -> None:
        self.requests = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = stun.parse_message(data)
        self.requests += 1
        response = stun.Message(
            message_method=stun.Method.BINDING,
            message_class=stun.Class.RESPONSE,
            transaction_id=request.transaction_id,
        )
        response.attributes["XOR-MAPPED-ADDRESS"] = addr
        assert self.transport is not None
        self.transport.sendto(bytes(response), addr)


async def test_server_peers_use_exactly_the_configured_ice_servers_never_aiortcs_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = os.environ["RD_NETNS_ADDR"]
    transport, fake = await asyncio.get_running_loop().create_datagram_endpoint(
        FakeStun, local_addr=(host, 0)
    )
    url = f"stun:{host}:{transport.get_extra_info('sockname')[1]}"
    # aiortc's default stands for the public STUN server it would otherwise ask.
    monkeypatch.setattr(RTCIceGatherer, "getDefaultIceServers", classmethod(lambda cls: [RTCIceServer(url)]))

    async def gather(servers: list[RTCIceServer]) -> None:
        pc = new_peer_connection(servers)
        try:
            pc.addTransceiver("audio", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
        finally:
            await pc.close()

    try:
        await gather([])  # ICE_SERVERS empty: no STUN server at all
        assert fake.requests == 0
        await gather([RTCIceServer(url)])  # and the configured one is used (the fake works)
        assert fake.requests >= 1
    finally:
        transport.close()
