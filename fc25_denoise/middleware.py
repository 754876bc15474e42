"""`DatabaseUnavailableMiddleware`: a request that finds the database unreachable before any
endpoint could catch it (loading the session is the first thing a signed-in request does)
answers 503 with Retry-After instead of a 500: JSON `{"error": ...}` under /api/ (the API
helper's wording), a short text elsewhere, so clients retry instead of reporting a failure.

Async-capable like Django's own middleware: a sync-only one would send every request through
a thread of asgiref's sync bridge, which shutdown then waits on.
"""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin

from fc25_denoise.api import UNAVAILABLE, error

log = logging.getLogger(__name__)
RETRY_AFTER_S = 5


class DatabaseUnavailableMiddleware(MiddlewareMixin):
    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        # OperationalError: the server is down, restarting or refusing connections;
        # InterfaceError: the connection broke under us. Other database errors are bugs.
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        log.warning("Database unavailable for %s %s: %s", request.method, request.path, exception)
        if request.path.startswith("/api/"):
            return error(503, UNAVAILABLE, **{"Retry-After": str(RETRY_AFTER_S)})
        response = HttpResponse(UNAVAILABLE, status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(RETRY_AFTER_S)
        return response
