"""Offer validation, ICE configuration and the two kinds of answer."""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack
from django.core.exceptions import ImproperlyConfigured

from fc25_denoise.errors import BadRequest
from streams.live.webrtc import (
    MAX_SDP_CHARS,
    answer_broadcaster,
    answer_listener,
    ice_servers,
    new_peer_connection,
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


async def test_listener_answer_sends_and_never_receives() -> None:
    sdp = await _offer(("audio", "sendrecv"))
    pc = new_peer_connection([])
    try:
        answer = await answer_listener(
            pc, parse_offer({"sdp": sdp, "type": "offer"}, "listen"), AudioStreamTrack()
        )
        assert "a=sendonly" in answer.sdp
        assert "a=sendrecv" not in answer.sdp
    finally:
        await pc.close()


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
