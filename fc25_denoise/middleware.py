"""Project middleware, async-capable like Django's own (a sync-only one would send every request
through a thread of asgiref's sync bridge, which shutdown then waits on).

`BodyLimitMiddleware` refuses oversized API bodies with 413 before anything parses them.
`DatabaseUnavailableMiddleware` answers 503 while the database cannot be reached (loading the
session is the first thing a signed-in request does): JSON `{"error": ...}` under /api/, a
short page elsewhere, both with Retry-After, so clients retry instead of reporting a failure.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.deprecation import MiddlewareMixin

log = logging.getLogger(__name__)
RETRY_AFTER_S = 5
UNAVAILABLE = "The service is briefly unavailable; try again in a few seconds."


class BodyLimitMiddleware(MiddlewareMixin):
    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if not request.path.startswith("/api/"):
            return None
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse({"error": "Content-Length must be a number."}, status=400)
        if length > limit:
            return JsonResponse(
                {"error": f"Request body is {length} bytes; the limit is {limit} bytes."}, status=413
            )
        return None


class DatabaseUnavailableMiddleware(MiddlewareMixin):
    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        # OperationalError: the server is down, restarting or refusing connections;
        # InterfaceError: the connection broke under us. Other database errors are bugs.
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        log.warning("Database unavailable for %s %s: %s", request.method, request.path, exception)
        if request.path.startswith("/api/"):
            response: HttpResponse = JsonResponse({"error": UNAVAILABLE}, status=503)
        else:
            response = HttpResponse(UNAVAILABLE, status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(RETRY_AFTER_S)
        return response
