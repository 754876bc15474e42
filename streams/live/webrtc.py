"""aiortc helpers: SDP validation, peer-connection creation and the two kinds of answer.

Everything here checks client input before a peer connection changes state, and turns every
way an offer can be wrong into `BadRequest` (aiortc's parser raises a zoo of built-in errors).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.exceptions import InvalidAccessError, InvalidStateError, OperationError
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import SessionDescription
from django.core.exceptions import ImproperlyConfigured

from fc25_denoise.errors import BadRequest, Conflict, Unavailable

log = logging.getLogger(__name__)

# What aiortc's SDP parser and description checks raise on malformed input.
_SDP_ERRORS = (ValueError, IndexError, KeyError, AttributeError, AssertionError, TypeError, UnicodeError)
_RTC_ERRORS = (*_SDP_ERRORS, InvalidAccessError, InvalidStateError, OperationError)
MAX_SDP_CHARS = 32_000
# ICE gathering waits for STUN/TURN answers; an unreachable server must not hang the request.
GATHER_TIMEOUT_S = 10.0


def ice_servers(raw: Any) -> list[RTCIceServer]:
    """settings.ICE_SERVERS (RTCIceServer dicts: urls, username?, credential?) for aiortc."""
    if not isinstance(raw, list):
        raise ImproperlyConfigured("ICE_SERVERS must be a JSON list of RTCIceServer objects")
    servers = []
    for entry in raw:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("urls"), str | list):
            raise ImproperlyConfigured(f"ICE_SERVERS entry needs 'urls': {entry!r}")
        servers.append(
            RTCIceServer(
                urls=entry["urls"], username=entry.get("username"), credential=entry.get("credential")
            )
        )
    return servers


@dataclass(frozen=True)
class Offer:
    description: RTCSessionDescription
    audio_mid: str  # the audio section the server will use


def _parse_sdp(data: Mapping[str, Any], kind: Literal["offer", "answer"]) -> tuple[str, SessionDescription]:
    """The body's {"sdp", "type": kind}: its type, size and syntax checked; else BadRequest."""
    sdp = data.get("sdp")
    if data.get("type") != kind:
        raise BadRequest(f'"type" must be "{kind}".')
    if not isinstance(sdp, str) or not sdp.strip():
        raise BadRequest('"sdp" must be a non-empty string.')
    if len(sdp) > MAX_SDP_CHARS:
        raise BadRequest(f"The SDP is longer than {MAX_SDP_CHARS} characters.")
    try:
        return sdp, SessionDescription.parse(sdp)
    except _SDP_ERRORS as exc:
        raise BadRequest(f"The SDP could not be parsed; send the {kind} an RTCPeerConnection made.") from exc


def parse_offer(data: Mapping[str, Any], role: Literal["broadcast", "listen"]) -> Offer:
    """The client's {"sdp", "type": "offer"}, checked before any peer connection exists.

    A broadcaster's offer must send audio, a listener's must accept it; else BadRequest.
    """
    sdp, parsed = _parse_sdp(data, "offer")
    audio = [m for m in parsed.media if m.kind == "audio"]
    if not audio:
        raise BadRequest("The SDP offer has no audio section.")
    wanted = ("sendonly", "sendrecv") if role == "broadcast" else ("recvonly", "sendrecv")
    usable = [m for m in audio if m.direction in wanted and m.rtp.muxId]
    if not usable:
        verb = "send" if role == "broadcast" else "receive"
        raise BadRequest(f"The SDP offer has no audio section that can {verb} audio.")
    chosen = usable[0]
    if not (chosen.ice.usernameFragment and chosen.ice.password and chosen.dtls and chosen.dtls.fingerprints):
        raise BadRequest("The SDP offer's audio section lacks ICE credentials or a DTLS fingerprint.")
    return Offer(RTCSessionDescription(sdp=sdp, type="offer"), chosen.rtp.muxId)


def new_peer_connection(servers: list[RTCIceServer]) -> RTCPeerConnection:
    """A server peer connection using exactly `servers`: an explicit empty list, since aiortc
    falls back to a public STUN server when given none (iceServers=None)."""
    return RTCPeerConnection(RTCConfiguration(iceServers=list(servers)))


async def answer_broadcaster(
    pc: RTCPeerConnection, offer: Offer
) -> tuple[RTCSessionDescription, MediaStreamTrack]:
    """Receive the offer's chosen audio section (returns its track); refuse every other one."""
    await _set_remote(pc, offer.description)
    track = None
    for transceiver in pc.getTransceivers():
        if transceiver.mid == offer.audio_mid:
            transceiver.direction = "recvonly"
            track = transceiver.receiver.track
        else:
            transceiver.direction = "inactive"
    if track is None:
        raise BadRequest("The SDP offer's audio section could not be received.")
    return await _answer(pc), track


def parse_answer(data: Mapping[str, Any]) -> str:
    """A listener's {"sdp", "type": "answer"} to the server's offer, checked like an offer."""
    sdp, parsed = _parse_sdp(data, "answer")
    audio = [m for m in parsed.media if m.kind == "audio" and m.direction in ("recvonly", "sendrecv")]
    if not audio:
        raise BadRequest("The SDP answer has no audio section that receives audio.")
    media = audio[0]  # session-level ICE and DTLS attributes are copied into each section
    if not (media.ice.usernameFragment and media.ice.password and media.dtls and media.dtls.fingerprints):
        raise BadRequest("The SDP answer lacks ICE credentials or a DTLS fingerprint.")
    return sdp


async def offer_listener(pc: RTCPeerConnection, track: MediaStreamTrack) -> RTCSessionDescription:
    """The server's offer to a listener: one audio section sending `track`, nothing received."""
    pc.addTransceiver(track, direction="sendonly")
    try:
        async with asyncio.timeout(GATHER_TIMEOUT_S):
            await pc.setLocalDescription(await pc.createOffer())
    except TimeoutError as exc:
        raise Unavailable("Gathering network candidates timed out; try again.") from exc
    return pc.localDescription


async def accept_answer(pc: RTCPeerConnection, sdp: str) -> None:
    """The listener's answer to `offer_listener`'s offer (checked by `parse_answer`)."""
    if pc.signalingState != "have-local-offer":
        raise Conflict("This listener has already answered.")
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
    except _RTC_ERRORS as exc:
        raise BadRequest(f"The SDP answer was refused: {exc or type(exc).__name__}.") from exc


async def _set_remote(pc: RTCPeerConnection, offer: RTCSessionDescription) -> None:
    try:
        await pc.setRemoteDescription(offer)
    except _RTC_ERRORS as exc:
        # aiortc's own words name its internals and quote the SDP: they go to the log only.
        log.info("SDP offer refused: %s: %s", type(exc).__name__, str(exc)[:200])
        raise BadRequest(
            "The SDP offer was refused: none of its audio codecs or settings can be answered."
        ) from exc


async def _answer(pc: RTCPeerConnection) -> RTCSessionDescription:
    try:
        async with asyncio.timeout(GATHER_TIMEOUT_S):
            await pc.setLocalDescription(await pc.createAnswer())
    except TimeoutError as exc:
        raise Unavailable("Gathering network candidates timed out; try again.") from exc
    except _RTC_ERRORS as exc:
        log.info("No answer to an SDP offer: %s: %s", type(exc).__name__, str(exc)[:200])
        raise BadRequest("No answer can be made to this offer.") from exc
    return pc.localDescription
