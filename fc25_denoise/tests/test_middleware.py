"""DatabaseUnavailableMiddleware: an unreachable database is a 503 to retry, never a 500.
(The real outage, PostgreSQL stopped under a running server: streams/live/tests/test_ownership.py.)"""

from __future__ import annotations

import json

from django.db import IntegrityError, InterfaceError, OperationalError
from django.http import HttpResponse
from django.test import RequestFactory

from fc25_denoise.middleware import DatabaseUnavailableMiddleware


def middleware() -> DatabaseUnavailableMiddleware:
    return DatabaseUnavailableMiddleware(lambda request: HttpResponse())


def test_an_unreachable_database_answers_503_json_under_the_api() -> None:
    for exc in (OperationalError("connection refused"), InterfaceError("connection already closed")):
        response = middleware().process_exception(RequestFactory().post("/api/stream/stop/"), exc)
        assert response is not None
        assert (response.status_code, response["Retry-After"]) == (503, "5")
        assert set(json.loads(response.content)) == {"error"}


def test_pages_get_a_short_503_and_other_errors_stay_errors() -> None:
    page = middleware().process_exception(RequestFactory().get("/"), OperationalError("down"))
    assert page is not None
    assert page.status_code == 503
    assert page["Content-Type"].startswith("text/plain")
    assert middleware().process_exception(RequestFactory().get("/api/x/"), IntegrityError("bug")) is None
