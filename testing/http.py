"""Assertions on HTTP answers that several API test modules share."""

from __future__ import annotations

from typing import Any


async def assert_json_refusals(cases: list[tuple[Any, str, str, int]]) -> None:
    """Each (client, method, path, status) is answered with that status and a JSON error alone."""
    for client, method, path, status in cases:
        response = await getattr(client, method)(path)
        assert (path, method, response.status_code) == (path, method, status)
        assert set(response.json()) == {"error"}
