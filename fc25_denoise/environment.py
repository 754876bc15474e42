"""Reading settings from the environment: each helper names the variable in its error, so a
wrong value stops start-up with a sentence saying what to write instead."""

from __future__ import annotations

import json
import os
import re

from django.core.exceptions import ImproperlyConfigured


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be 1/0/true/false, got {raw!r}")


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw else default
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw else default
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number of seconds, got {raw!r}") from exc
    if value < 0:
        raise ImproperlyConfigured(f"{name} must not be negative, got {raw!r}")
    return value


def env_rate(name: str, default: str) -> str:
    """A django-ratelimit rate: COUNT/PERIOD with PERIOD like s, m, h, d or 15m."""
    raw = os.environ.get(name, "") or default
    if not re.fullmatch(r"[1-9][0-9]*/[1-9]?[0-9]*[smhd]", raw):
        raise ImproperlyConfigured(f"{name} must be like 30/15m (attempts per period), got {raw!r}")
    return raw


def env_ice_servers(name: str) -> list[dict[str, object]]:
    """A JSON list of RTCIceServer dictionaries, each with "urls" (a string or a list of strings)."""
    raw = os.environ.get(name, "").strip() or "[]"
    try:
        servers = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"{name} must be a JSON list of RTCIceServer objects: {exc}") from exc
    if not isinstance(servers, list) or not all(_is_ice_server(item) for item in servers):
        raise ImproperlyConfigured(
            f'{name} must be a JSON list like [{{"urls": "stun:stun.example.org:3478"}}], got {raw!r}'
        )
    if any("credential" in item for item in servers):
        # Every page gets these: a long-lived TURN password must never be among them.
        raise ImproperlyConfigured(
            f"{name} must not carry credentials; for TURN set TURN_SECRET and TURN_URLS"
        )
    return servers


def _is_ice_server(item: object) -> bool:
    if not isinstance(item, dict):
        return False
    urls = item.get("urls")
    if isinstance(urls, str):
        urls = [urls]
    return isinstance(urls, list) and bool(urls) and all(isinstance(u, str) and u for u in urls)
