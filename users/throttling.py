"""Throttling of sign-in and sign-up (docs/deploy.md, "Throttling").

Per account, django-axes counts failed passwords for a username (any case, from anywhere, the
admin's sign-in included) and refuses that account for AXES_COOLOFF_TIME after
AXES_FAILURE_LIMIT of them. Per client address, django-ratelimit caps sign-in and sign-up
attempts (LOGIN_RATE_PER_IP, SIGNUP_RATE_PER_IP; SIGNUP_RATE_PER_NAME per name asked for).
Both count in the default cache: Redis when REDIS_URL is set, so every process shares them.
Refusals are the sign-in page again with the reason, status 429.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_ratelimit.decorators import ratelimit
from django_ratelimit.exceptions import Ratelimited

View = Callable[..., HttpResponse]

ACCOUNT_LOCKED = "Too many wrong passwords for this account. Wait {minutes} minutes, then try again."
ADDRESS_LIMITED = "Too many attempts from your network. Wait a few minutes, then try again."


def username_of(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """AXES_USERNAME_CALLABLE: usernames match case-insensitively, so ALICE counts as alice."""
    raw = (credentials or {}).get("username") or request.POST.get("username") or ""
    return str(raw).strip().lower()[:150]


class _RefusedForm(AuthenticationForm):
    """The sign-in form with what was typed as the name, carrying only the refusal (it never
    authenticates: a refused attempt must not count, or reveal, anything)."""

    def __init__(self, request: HttpRequest, refusal: str) -> None:
        super().__init__(request, data={"username": str(request.POST.get("username", ""))[:150]})
        for field in self.fields.values():
            field.required = False
        self.refusal = refusal

    def clean(self) -> dict[str, Any]:
        raise ValidationError(self.refusal)


def failure_limit(request: HttpRequest, credentials: dict[str, Any] | None) -> int:
    """AXES_FAILURE_LIMIT: axes refuses the attempt that reaches it, so LOGIN_FAILURES_PER_ACCOUNT
    wrong passwords are answered normally and the next one is refused."""
    return int(settings.LOGIN_FAILURES_PER_ACCOUNT) + 1


def _refusal(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "registration/login.html", {"form": _RefusedForm(request, message)}, status=429)


def locked_out(
    request: HttpRequest, response: HttpResponse | None = None, credentials: dict[str, Any] | None = None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE."""
    minutes = round(settings.AXES_COOLOFF_TIME.total_seconds() / 60)
    return _refusal(request, ACCOUNT_LOCKED.format(minutes=minutes))


def _refusing(view: View) -> View:
    """The view, answering django-ratelimit's refusal itself (its middleware is sync-only, which
    would send every request through asgiref's sync bridge)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except Ratelimited:
            return _refusal(request, ADDRESS_LIMITED)

    return wrapper


def _rate(name: str) -> Callable[[str, HttpRequest], str]:
    # Read at request time, so settings overrides (and the tests) apply.
    return lambda group, request: getattr(settings, name)


def sign_in(view: View) -> View:
    """Per-address limit on a sign-in view (the site's and the admin's)."""
    return _refusing(
        ratelimit(key="ip", rate=_rate("LOGIN_RATE_PER_IP"), method="POST", group="sign-in")(view)
    )


def sign_up(view: View) -> View:
    """Per-address and per-name limits on the sign-up view."""
    per_name = ratelimit(
        key=lambda group, request: username_of(request, None),
        rate=_rate("SIGNUP_RATE_PER_NAME"),
        method="POST",
        group="sign-up-name",
    )
    per_ip = ratelimit(key="ip", rate=_rate("SIGNUP_RATE_PER_IP"), method="POST", group="sign-up")
    return _refusing(per_ip(per_name(view)))
