"""Thin async views of the live path: fc25_denoise.api checks the caller, the access and the body;
these call the StreamRouter (which runs each call on the process owning the stream). The unload
beacon's stop carries the CSRF token as a form field.

Listening, the same with or without Janus: POST listen/<username>/ {} gives the server's offer
and a listener id; POST listen/<username>/answer/ {"listener_id", "type": "answer", "sdp"}
completes it; POST listen/<username>/leave/ {"listener_id"} ends it early."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.http import HttpRequest, HttpResponse

from fc25_denoise.api import endpoint, error, reply
from streams.cluster.router import StreamRouter
from streams.live.metrics import CONTENT_TYPE
from streams.live.registry import StreamRegistry
from users.models import User


def _registry(request: HttpRequest) -> StreamRegistry:
    return request.scope["services"].registry  # type: ignore[attr-defined]


def _router(request: HttpRequest) -> StreamRouter:
    return request.scope["services"].router  # type: ignore[attr-defined]


@endpoint("POST", json_body=True)
async def start_stream(request: HttpRequest, user: User, body: dict[str, Any]) -> HttpResponse:
    return reply(await _router(request).start_stream(user, body), status=201)


@endpoint("POST", json_body=True)
async def webrtc_offer(request: HttpRequest, user: User, body: dict[str, Any]) -> HttpResponse:
    # Whose session it is comes before what the SDP says (the router checks in that order).
    return reply(await _router(request).broadcast(user, body))


async def _may_listen(request: HttpRequest, user: User, username: str) -> None:
    await _router(request).listen_target(user, username)


@endpoint("POST", json_body=True, access=_may_listen)
async def webrtc_listen(
    request: HttpRequest, user: User, body: dict[str, Any], username: str
) -> HttpResponse:
    """The server's offer for a new listener: {"listener_id", "type": "offer", "sdp"}."""
    if "sdp" in body:
        return error(400, "Send no offer: the server offers, then POST the answer to .../answer/.")
    return reply(await _router(request).listen(user, username))


@endpoint("POST", json_body=True, access=_may_listen)
async def webrtc_listen_answer(
    request: HttpRequest, user: User, body: dict[str, Any], username: str
) -> HttpResponse:
    """The listener's answer: {"listener_id", "type": "answer", "sdp"}."""
    return reply(await _router(request).answer(user, username, body))


async def _was_friend(request: HttpRequest, user: User, username: str) -> None:
    await _router(request).leave_target(user, username)


@endpoint("POST", json_body=True, access=_was_friend)
async def webrtc_listen_leave(
    request: HttpRequest, user: User, body: dict[str, Any], username: str
) -> HttpResponse:
    return reply(await _router(request).leave(user, username, body))


async def _is_live(request: HttpRequest, user: User) -> None:
    await _router(request).own_stream(user)


@endpoint("PATCH", json_body=True, access=_is_live)
async def stream_settings(request: HttpRequest, user: User, body: dict[str, Any]) -> HttpResponse:
    if set(body) - {"denoise", "atten_lim_db"}:
        return error(400, "Only denoise and atten_lim_db can be changed.")
    return reply(await _router(request).update_settings(user, body))


@endpoint("POST")
async def stop_stream(request: HttpRequest, user: User) -> HttpResponse:
    # No body needed: a beacon sends only the CSRF token as a form field.
    return reply(await _router(request).stop_stream(user))


@endpoint("GET")
async def stream_status(request: HttpRequest, user: User, username: str) -> HttpResponse:
    return reply(await _router(request).status(user, username))


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
