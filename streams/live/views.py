"""Thin async views of the live path: fc25_denoise.api checks the caller, the access and the body;
these call the StreamRegistry. The unload beacon's stop carries the CSRF token as a form field."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.http import HttpRequest, HttpResponse

from fc25_denoise.api import endpoint, error, reply
from streams.live.metrics import CONTENT_TYPE
from streams.live.registry import StreamRegistry
from streams.live.webrtc import parse_offer
from users.models import User


def _registry(request: HttpRequest) -> StreamRegistry:
    return request.scope["services"].registry  # type: ignore[attr-defined]


@endpoint("POST", json_body=True)
async def start_stream(request: HttpRequest, user: User, body: dict[str, Any]) -> HttpResponse:
    session = await _registry(request).start_stream(
        user, denoise=body.get("denoise"), atten_lim_db=body.get("atten_lim_db")
    )
    return reply({"session_id": session.session_id, "started_at": session.started_at.isoformat()}, status=201)


@endpoint("POST", json_body=True)
async def webrtc_offer(request: HttpRequest, user: User, body: dict[str, Any]) -> HttpResponse:
    # Whose session it is comes before what the SDP says.
    _registry(request).broadcast_session(user, body.get("session_id"))
    offer = parse_offer(body, "broadcast")
    answer = await _registry(request).accept_offer(user, body.get("session_id"), offer)
    return reply({"sdp": answer.sdp, "type": answer.type})


async def _may_listen(request: HttpRequest, user: User, username: str) -> None:
    await _registry(request).listen_session(user, username)


@endpoint("POST", json_body=True, access=_may_listen)
async def webrtc_listen(
    request: HttpRequest, user: User, body: dict[str, Any], username: str
) -> HttpResponse:
    answer = await _registry(request).listen(user, username, parse_offer(body, "listen"))
    return reply({"sdp": answer.sdp, "type": answer.type})


async def _is_live(request: HttpRequest, user: User) -> None:
    await _registry(request).own_session(user)


@endpoint("PATCH", json_body=True, access=_is_live)
async def stream_settings(request: HttpRequest, user: User, body: dict[str, Any]) -> HttpResponse:
    if set(body) - {"denoise", "atten_lim_db"}:
        return error(400, "Only denoise and atten_lim_db can be changed.")
    session = await _registry(request).update_settings(
        user, denoise=body.get("denoise"), atten_lim_db=body.get("atten_lim_db")
    )
    return reply({"denoise": session.denoise, "atten_lim_db": session.atten_lim_db})


@endpoint("POST")
async def stop_stream(request: HttpRequest, user: User) -> HttpResponse:
    # No body needed: a beacon sends only the CSRF token as a form field.
    return reply({"stopped": await _registry(request).stop_stream(user)})


@endpoint("GET")
async def stream_status(request: HttpRequest, user: User, username: str) -> HttpResponse:
    status = await _registry(request).status(user, username)
    return reply(status.as_json())


@endpoint("GET", sign_in=False)
async def metrics(request: HttpRequest, user: User) -> HttpResponse:
    """Prometheus text for staff users and for loopback clients not relayed by a proxy."""
    if not (_loopback(request) or (user.is_authenticated and user.is_staff)):
        return error(403, "Metrics are for staff users or local monitoring only.")
    return HttpResponse(_registry(request).metrics.render(), content_type=CONTENT_TYPE)


def _loopback(request: HttpRequest) -> bool:
    if "HTTP_X_FORWARDED_FOR" in request.META or "HTTP_X_REAL_IP" in request.META:
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR") or "").is_loopback
    except ValueError:
        return False
