"""The one helper every JSON endpoint goes through, and the JSON answers of Django's own errors.

`@endpoint("POST", json_body=True, access=...)` makes an async Django view that checks, in this
order, each refusal a `{"error": "<sentence>"}` with one wording per status:

  method    405 with `Allow` (OPTIONS answers 200 with `Allow` and nothing else)
  sign-in   401
  CSRF      403, by Django's own `csrf_protect` (CSRF_FAILURE_VIEW is `csrf_failure` below)
  access    the endpoint's `access(request, user, **url_kwargs)`: may this user do this to that
            resource? It raises a DomainError (403/404/409) before the body is looked at
  body      413 over DATA_UPLOAD_MAX_MEMORY_SIZE (by Content-Length, then by what arrived);
            with `json_body`, 415 unless JSON and 400 unless one JSON object (an empty body is {})

then calls `view(request, user[, body], **url_kwargs)`. A DomainError raised anywhere becomes its
status; a database outage becomes 503. `combine()` serves several methods on one URL.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from django.urls import Resolver404, resolve
from django.views import csrf, defaults
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from fc25_denoise.errors import BadRequest, DomainError

log = logging.getLogger(__name__)

View = Callable[..., Awaitable[HttpResponseBase]]
Access = Callable[..., Awaitable[object]]

SIGN_IN = "Sign in first."
CSRF_FAILED = "The CSRF check failed; reload the page and try again."
NOT_JSON = "Send the body as JSON (Content-Type: application/json)."
UNREADABLE = "The request body could not be read."
UNAVAILABLE = "The service is briefly unavailable; try again in a few seconds."
NO_ENDPOINT = "There is no API endpoint at this path."
MALFORMED = "The request was malformed."
FORBIDDEN = "You may not do that."
FAILED = "The server failed; the error was logged."


def error(status: int, message: str, **headers: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status, headers=headers)


class _Encoder(DjangoJSONEncoder):
    """Datetimes in full ISO 8601 (microseconds kept, UTC as Z), as the API always gave them."""

    def default(self, o: Any) -> Any:
        if isinstance(o, dt.datetime):
            text = o.isoformat()
            return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text
        return super().default(o)


def reply(data: Any, status: int = 200, **headers: str) -> JsonResponse:
    """A JSON answer (any JSON value)."""
    return JsonResponse(data, encoder=_Encoder, status=status, safe=False, headers=headers)


def too_large() -> JsonResponse:
    return error(413, f"The request body is over the limit of {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")


@dataclass(frozen=True)
class _Rule:
    view: View
    json_body: bool
    access: Access | None
    sign_in: bool


def endpoint(
    *methods: str, json_body: bool = False, access: Access | None = None, sign_in: bool = True
) -> Callable[[View], View]:
    """The view for `methods` (GET brings HEAD); see the module's docstring for the checks."""

    def decorate(view: View) -> View:
        rule = _Rule(view, json_body, access, sign_in)
        names = [*methods, "HEAD"] if "GET" in methods and "HEAD" not in methods else list(methods)
        return _dispatcher({name: rule for name in names})

    return decorate


def combine(*views: View) -> View:
    """One URL served by several endpoints of different methods."""
    rules: dict[str, _Rule] = {}
    for view in views:
        rules.update(view.api_rules)  # type: ignore[attr-defined]
    return _dispatcher(rules)


def _dispatcher(rules: dict[str, _Rule]) -> View:
    allow = ", ".join([*rules, "OPTIONS"])
    # What a 405 says; HEAD goes without saying.
    usable = " or ".join(name for name in rules if name != "HEAD")

    async def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method == "OPTIONS":
            return HttpResponse(headers={"Allow": allow})
        rule = rules.get(request.method or "")
        if rule is None:
            return error(405, f"Use {usable} here.", Allow=allow)
        return await _serve(request, rule, kwargs)

    view.api_rules = rules  # type: ignore[attr-defined]
    # Django's CSRF middleware would refuse before the sign-in check; _serve runs it afterwards.
    return csrf_exempt(view)


async def _serve(request: HttpRequest, rule: _Rule, kwargs: dict[str, Any]) -> HttpResponseBase:
    user = await request.auser()
    if rule.sign_in and not user.is_authenticated:
        return error(401, SIGN_IN)
    try:
        length = _content_length(request)
        if length <= settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            # Read now: the CSRF check parses form bodies, after which Django refuses to give
            # the raw body (RawPostDataException) to the JSON reader.
            request.body  # noqa: B018
        return await _checked(request, rule, user, kwargs)
    except DomainError as exc:
        return error(exc.status_code, str(exc))
    except RequestDataTooBig:  # while the CSRF check parses a form body
        return too_large()
    except (SuspiciousOperation, MultiPartParserError, UnreadablePostError):
        # The CSRF check could not parse a form body (too many fields, malformed multipart).
        return error(415, NOT_JSON) if rule.json_body else error(400, UNREADABLE)
    except (OperationalError, InterfaceError) as exc:
        log.warning("Database unavailable answering %s %s: %s", request.method, request.path, exc)
        return error(503, UNAVAILABLE)
    except DatabaseError:
        log.exception("Database error answering %s %s", request.method, request.path)
        return error(503, UNAVAILABLE)


def _content_length(request: HttpRequest) -> int:
    raw = request.META.get("CONTENT_LENGTH") or "0"
    if not (raw.isascii() and raw.isdigit()):
        raise BadRequest("Content-Length must be a number of bytes.")
    return int(raw)


@csrf_protect
async def _checked(request: HttpRequest, rule: _Rule, user: Any, kwargs: dict[str, Any]) -> HttpResponseBase:
    if rule.access is not None:
        await rule.access(request, user, **kwargs)
    if _content_length(request) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        return too_large()
    if len(request.body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:  # a body without Content-Length
        return too_large()
    if not rule.json_body:
        return await rule.view(request, user, **kwargs)
    if request.body and request.content_type != "application/json":
        return error(415, NOT_JSON)
    return await rule.view(request, user, json_object(request.body), **kwargs)


def json_object(raw: bytes) -> dict[str, Any]:
    """The body as one JSON object (empty means {}); NaN, Infinity and lone surrogates refused."""
    if not raw:
        return {}
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, nested past Python's limit
        raise BadRequest("The body must be a JSON object; it is not valid JSON.") from exc
    if not isinstance(value, dict):
        raise BadRequest(f"The body must be a JSON object, not {_json_kind(value)}.")
    if _has_lone_surrogate(value):
        raise BadRequest("Text in the body must be valid Unicode (it has a lone surrogate).")
    return value


def _no_constant(name: str) -> None:
    raise ValueError(name)


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a boolean" if isinstance(value, bool) else "a number"


def _has_lone_surrogate(value: object) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and any("\ud800" <= ch <= "\udfff" for ch in item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


# --- Django's own errors: JSON under /api/, Django's pages elsewhere (see fc25_denoise/urls.py) ---
def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """settings.CSRF_FAILURE_VIEW."""
    if not _is_api(request):
        return csrf.csrf_failure(request, reason)
    return error(403, CSRF_FAILED)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not _is_api(request):
        return defaults.page_not_found(request, exception)  # type: ignore[arg-type]
    message = NO_ENDPOINT
    if _exists_with_slash(request.path_info):
        message += " API paths end with a slash."
    return error(404, message)


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
    return error(400, MALFORMED)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not _is_api(request):
        return defaults.permission_denied(request, exception)  # type: ignore[arg-type]
    return error(403, FORBIDDEN)


def server_error(request: HttpRequest) -> HttpResponse:
    if not _is_api(request):
        return defaults.server_error(request)
    return error(500, FAILED)
