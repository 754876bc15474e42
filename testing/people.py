"""Names the apps' test fixtures share (the fixtures themselves are in the root conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

from users.models import User

PASSWORD = "correct-horse-battery-9"

MakeUser = Callable[[str], User]
