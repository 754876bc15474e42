"""Sign-in and sign-up throttling: per account (django-axes) and per address (django-ratelimit),
in memory and in Redis (what every process shares when REDIS_URL is set)."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable

import pytest
from axes.handlers.proxy import AxesProxyHandler
from django.test import Client
from pytest_django.fixtures import Settings

from testing.people import PASSWORD
from users.models import User
from users.throttling import ACCOUNT_LOCKED, ADDRESS_LIMITED

pytestmark = pytest.mark.django_db
WRONG = "not-the-password"
LOCK_S = 1


@pytest.fixture(params=["memory", "redis"])
def limits(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """Small limits, counted in this process's memory or in Redis under a fresh prefix."""
    if request.param == "redis":
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": request.getfixturevalue("redis_url"),
                "KEY_PREFIX": f"test-throttle-{uuid.uuid4().hex[:8]}",
            }
        }
    AxesProxyHandler.get_implementation(force=True)  # axes keeps the cache it was built with
    settings.LOGIN_FAILURES_PER_ACCOUNT = 3
    settings.AXES_COOLOFF_TIME = dt.timedelta(seconds=LOCK_S)
    settings.LOGIN_RATE_PER_IP = "6/m"
    settings.SIGNUP_RATE_PER_IP = "3/h"
    settings.SIGNUP_RATE_PER_NAME = "2/h"
    return settings


def _from(address: str) -> Client:
    return Client(REMOTE_ADDR=address)


def _sign_in(client: Client, username: str, password: str, path: str = "/accounts/login/") -> int:
    response = client.post(path, {"username": username, "password": password})
    return response.status_code


def _message(response_text: str) -> str:
    return response_text.replace("&#x27;", "'")


def test_the_account_locks_after_the_failure_limit_and_opens_after_the_window(
    limits: Settings, make_user: Callable[[str], User]
) -> None:
    make_user("alice"), make_user("bob")
    attacker = _from("198.51.100.7")
    assert [_sign_in(attacker, name, WRONG) for name in ("alice", "ALICE", "Alice")] == [200, 200, 200]
    locked = attacker.post("/accounts/login/", {"username": "alice", "password": WRONG})
    assert locked.status_code == 429
    assert ACCOUNT_LOCKED.format(minutes=0).split(".")[0] in _message(locked.content.decode())
    # The right password, even from elsewhere, waits out the window: it is the account that is locked.
    assert _sign_in(_from("203.0.113.5"), "alice", PASSWORD) == 429
    assert _sign_in(_from("203.0.113.5"), "bob", PASSWORD) == 302  # other accounts are not
    time.sleep(LOCK_S + 0.2)  # the window is time itself: nothing to wait on
    assert _sign_in(_from("203.0.113.5"), "alice", PASSWORD) == 302


def test_failures_at_the_admin_sign_in_lock_the_account_too(
    limits: Settings, make_user: Callable[[str], User]
) -> None:
    make_user("alice")
    client = _from("198.51.100.7")
    for _ in range(3):  # the admin's form answers 200 with its own error
        assert _sign_in(client, "alice", WRONG, "/admin/login/") == 200
    assert _sign_in(client, "alice", WRONG, "/admin/login/") == 429
    assert _sign_in(_from("203.0.113.5"), "alice", PASSWORD) == 429


def test_one_address_may_try_only_so_many_sign_ins(
    limits: Settings, make_user: Callable[[str], User]
) -> None:
    for name in ("a1", "a2", "a3", "a4", "a5", "a6", "a7"):
        make_user(name)
    sprayer = _from("198.51.100.7")
    # Different accounts, one wrong password each: the account limit never triggers, this does.
    assert [_sign_in(sprayer, f"a{n}", WRONG) for n in range(1, 7)] == [200] * 6
    refused = sprayer.post("/accounts/login/", {"username": "a7", "password": PASSWORD})
    assert refused.status_code == 429
    assert ADDRESS_LIMITED in _message(refused.content.decode())
    assert _sign_in(_from("198.51.100.7"), "a7", PASSWORD, "/admin/login/") == 429  # the admin's too
    assert _sign_in(_from("203.0.113.5"), "a7", PASSWORD) == 302  # another address is not limited
    assert sprayer.get("/accounts/login/").status_code == 200  # reading the page is not counted


def _sign_up(client: Client, username: str) -> int:
    form = {"username": username, "password1": PASSWORD, "password2": PASSWORD}
    return client.post("/accounts/register/", form).status_code


def test_sign_ups_are_limited_per_address_and_per_name(limits: Settings) -> None:
    office = _from("198.51.100.7")
    assert [_sign_up(_from("198.51.100.7"), f"new{n}") for n in range(3)] == [302, 302, 302]
    assert _sign_up(office, "new3") == 429
    assert not User.objects.filter(username="new3").exists()
    assert _sign_up(_from("203.0.113.5"), "new3") == 302  # another address may
    # One name tried again and again (a script guessing whether it is free) is refused too.
    assert [_sign_up(_from(f"203.0.113.{n}"), "taken") for n in (10, 11, 12)] == [302, 200, 429]
