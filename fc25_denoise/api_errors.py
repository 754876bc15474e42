"""Every API error is JSON `{"error": "<plain sentence>"}`."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_handler


def _sentence(detail: Any) -> str:
    if isinstance(detail, dict):
        field, value = next(iter(detail.items()))
        text = _sentence(value)
        return text if field in ("non_field_errors", "detail", "error") else f"{field}: {text}"
    if isinstance(detail, list) and detail:
        return _sentence(detail[0])
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = drf_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        response.status_code = status.HTTP_401_UNAUTHORIZED
    response.data = {"error": _sentence(response.data)}
    return response
