"""Every API error is JSON `{"error": "<plain sentence>"}`."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from django.views import defaults
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
    text = _sentence(response.data).strip() or "The request was refused."
    response.data = {"error": text if text[-1] in ".!?" else f"{text}."}
    return response


# Django-level errors (unknown path, bad host, crash) under /api/ answer JSON like the views do.
def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not _is_api(request):
        return defaults.page_not_found(request, exception)  # type: ignore[arg-type]
    message = f"There is no API endpoint at {request.path[:200]}."
    if _exists_with_slash(request.path_info):
        message += " API paths end with a slash."
    return JsonResponse({"error": message}, status=404)


def _exists_with_slash(path: str) -> bool:
    if path.endswith("/"):
        return False
    try:
        return resolve(f"{path}/").func is not not_found
    except Resolver404:
        return False


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not _is_api(request):
        return defaults.bad_request(request, exception)  # type: ignore[arg-type]
    return JsonResponse({"error": "The request was malformed."}, status=400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not _is_api(request):
        return defaults.permission_denied(request, exception)  # type: ignore[arg-type]
    return JsonResponse({"error": "You may not do that."}, status=403)


def server_error(request: HttpRequest) -> HttpResponse:
    if not _is_api(request):
        return defaults.server_error(request)
    return JsonResponse({"error": "The server failed; the error was logged."}, status=500)
