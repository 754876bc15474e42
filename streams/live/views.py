"""Thin async views of the live path: check the caller, parse JSON, call the StreamRegistry.

Plain async Django views (DRF's APIView is sync and the registry lives on the event loop), with
DRF's contract: session auth, anonymous -> 401, CSRF enforced (header or, for the unload
beacon, the `csrfmiddlewaretoken` form field), every error `{"error": "<sentence>"}`.
"""

from __future__ import annotations

import functools
import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from streams.exceptions import BadRequest, StreamError
from streams.live.metrics import CONTENT_TYPE
from streams.live.registry import StreamRegistry
from streams.live.webrtc import parse_offer
from users.models import User

View = Callable[..., Awaitable[HttpResponse]]
_SAFE = ("GET", "HEAD", "OPTIONS")


class _CsrfCheck(CsrfViewMiddleware):
    """Django's CSRF rules, but reporting the reason instead of rendering the HTML 403 page."""

    def _reject(self, request: HttpRequest, reason: str) -> str:  # type: ignore[override]
        return reason


def _csrf_failure(request: HttpRequest) -> str | None:
    check = _CsrfCheck(lambda _request: HttpResponse())
    check.process_request(request)
    return check.process_view(request, None, (), {})  # type: ignore[arg-type, return-value]


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def api(*methods: str) -> Callable[[View], View]:
    """Method check, auth (401), CSRF (403) and StreamError -> JSON for an async view."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                return _error(405, f"Use {' or '.join(methods)} here.")
            user = await request.auser()
            if not user.is_authenticated:
                return _error(401, "Sign in first.")
            try:
                if request.method not in _SAFE and (reason := _csrf_failure(request)):
                    return _error(403, f"CSRF check failed: {reason}")
                return await view(request, user, *args, **kwargs)
            except RequestDataTooBig:
                return _error(413, "The request body is too large.")
            except StreamError as exc:
                return _error(exc.status_code, str(exc))

        return csrf_exempt(wrapper)

    return decorate


def _json(request: HttpRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, RecursionError) as exc:
        raise BadRequest("The body must be a JSON object.") from exc
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    return body


def _registry(request: HttpRequest) -> StreamRegistry:
    return request.scope["services"].registry  # type: ignore[attr-defined]


@api("POST")
async def start_stream(request: HttpRequest, user: User) -> HttpResponse:
    body = _json(request)
    session = await _registry(request).start_stream(
        user, denoise=body.get("denoise"), atten_lim_db=body.get("atten_lim_db")
    )
    return JsonResponse(
        {"session_id": session.session_id, "started_at": session.started_at.isoformat()}, status=201
    )


@api("POST")
async def webrtc_offer(request: HttpRequest, user: User) -> HttpResponse:
    body = _json(request)
    offer = parse_offer(body, "broadcast")
    answer = await _registry(request).accept_offer(user, body.get("session_id"), offer)
    return JsonResponse({"sdp": answer.sdp, "type": answer.type})


@api("POST")
async def webrtc_listen(request: HttpRequest, user: User, username: str) -> HttpResponse:
    offer = parse_offer(_json(request), "listen")
    answer = await _registry(request).listen(user, username, offer)
    return JsonResponse({"sdp": answer.sdp, "type": answer.type})


@api("PATCH")
async def stream_settings(request: HttpRequest, user: User) -> HttpResponse:
    body = _json(request)
    unknown = set(body) - {"denoise", "atten_lim_db"}
    if unknown:
        raise BadRequest(f"Unknown field {sorted(unknown)[0]!r}; use denoise and atten_lim_db.")
    session = await _registry(request).update_settings(
        user, denoise=body.get("denoise"), atten_lim_db=body.get("atten_lim_db")
    )
    return JsonResponse({"denoise": session.denoise, "atten_lim_db": session.atten_lim_db})


@api("POST")
async def stop_stream(request: HttpRequest, user: User) -> HttpResponse:
    # No body needed: a beacon sends only the CSRF token as a form field.
    stopped = await _registry(request).stop_stream(user)
    return JsonResponse({"stopped": stopped})


@api("GET")
async def stream_status(request: HttpRequest, user: User, username: str) -> HttpResponse:
    status = await _registry(request).status(user, username)
    return JsonResponse(status.as_json())


async def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text for staff users and for loopback clients not relayed by a proxy."""
    if not _loopback(request):
        user = await request.auser()
        if not (user.is_authenticated and user.is_staff):
            return _error(403, "Metrics are for staff users or local monitoring only.")
    return HttpResponse(_registry(request).metrics.render(), content_type=CONTENT_TYPE)


def _loopback(request: HttpRequest) -> bool:
    if "HTTP_X_FORWARDED_FOR" in request.META or "HTTP_X_REAL_IP" in request.META:
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR") or "").is_loopback
    except ValueError:
        return False
