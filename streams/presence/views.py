"""GET /api/presence/: the polling fallback of ws/presence/, with the snapshot's content."""

from __future__ import annotations

import hashlib
import json
import logging

from django.http import HttpRequest, HttpResponse
from django.utils.http import parse_etags, quote_etag

from fc25_denoise.api import endpoint
from fc25_denoise.errors import Unavailable
from streams.presence.service import STORE_ERRORS
from users.models import User

log = logging.getLogger(__name__)


@endpoint("GET")
async def presence(request: HttpRequest, user: User) -> HttpResponse:
    try:
        snapshot = await request.scope["services"].presence.snapshot(user.pk)  # type: ignore[attr-defined]
    except STORE_ERRORS as exc:
        log.exception("Presence store unreachable while answering a poll")
        raise Unavailable("Presence is unavailable right now; try again shortly.") from exc
    body = json.dumps(snapshot.payload, sort_keys=True, separators=(",", ":"))
    etag = quote_etag(hashlib.sha256(body.encode()).hexdigest()[:32])
    # Weak comparison (RFC 9110 13.1.2), as Django's conditional_page does: W/"x" matches "x".
    wanted = {tag.removeprefix("W/") for tag in parse_etags(request.headers.get("If-None-Match", ""))}
    if etag in wanted or "*" in wanted:
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(body, content_type="application/json")
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    return response
