"""ICE servers and TURN REST API credentials: the function, the endpoint, the settings checks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import Client, override_settings

from fc25_denoise.ice import SERVER_IDENTITY, ice_servers_for, turn_credential, turn_password
from testing.processes import expected_password
from users.models import User

BASE_DIR = Path(__file__).resolve().parents[2]
STUN = {"urls": "stun:stun.example.org:3478"}
TURN = {
    "ICE_SERVERS": [STUN],
    "TURN_SECRET": "s3cret",
    "TURN_URLS": ["turn:turn.example.org:3478?transport=udp", "turn:turn.example.org:3478?transport=tcp"],
    "TURN_TTL_S": 3600,
}


@pytest.fixture
def user(db: None) -> User:
    return User.objects.create_user(username="ice-user", password=None)


def test_turn_password_matches_a_known_vector() -> None:
    # Computed with `printf %s "1700000000:42" | openssl dgst -sha1 -hmac s3cret -binary | base64`.
    assert turn_password("s3cret", "1700000000:42") == "pkGfLzidB0U1T2lLkxNy/vgk7ZE="


def test_turn_credential_is_expiry_colon_identity() -> None:
    cred = turn_credential("s3cret", "42", ttl_s=600, now=1_700_000_000.7)
    assert cred.username == "1700000600:42"
    assert cred.expires_at == 1_700_000_600
    assert cred.credential == expected_password("s3cret", "1700000600:42")


@override_settings(**TURN)
def test_ice_servers_for_a_user_adds_fresh_turn_credentials(user: User) -> None:
    before = int(time.time())
    servers = ice_servers_for(user)
    assert servers[0] == STUN
    turn = servers[1]
    assert turn["urls"] == TURN["TURN_URLS"]
    expiry, identity = turn["username"].split(":")
    assert identity == str(user.pk)
    assert before + 3600 <= int(expiry) <= int(time.time()) + 3600
    assert turn["credential"] == expected_password("s3cret", turn["username"])
    assert len(servers) == 2


@override_settings(**TURN)
def test_server_peers_get_their_own_identity() -> None:
    servers = ice_servers_for(None, now=1_700_000_000)
    assert servers[-1]["username"] == f"1700003600:{SERVER_IDENTITY}"


@override_settings(**TURN)
def test_anonymous_users_get_no_turn_entry() -> None:
    assert ice_servers_for(AnonymousUser()) == [STUN]


@override_settings(ICE_SERVERS=[STUN], TURN_SECRET="", TURN_URLS=[])
def test_without_turn_secret_only_ice_servers_are_returned(user: User) -> None:
    servers = ice_servers_for(user)
    assert servers == [STUN]
    servers[0]["urls"] = "changed"  # a copy: callers cannot change the settings
    assert ice_servers_for(user) == [STUN]


@override_settings(**TURN)
def test_endpoint_gives_a_signed_in_user_credentials(client: Client, user: User) -> None:
    client.force_login(user)
    response = client.get("/api/ice-servers/")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["ttl"] == 3600
    turn = body["iceServers"][1]
    assert turn["username"].endswith(f":{user.pk}")
    assert turn["credential"] == expected_password("s3cret", turn["username"])
    assert "s3cret" not in response.content.decode()


@override_settings(ICE_SERVERS=[STUN], TURN_SECRET="", TURN_URLS=[])
def test_endpoint_without_turn_has_no_ttl(client: Client, user: User) -> None:
    client.force_login(user)
    assert client.get("/api/ice-servers/").json() == {"iceServers": [STUN], "ttl": None}


@override_settings(**TURN)
def test_endpoint_refuses_anonymous_and_other_methods(client: Client, user: User) -> None:
    anonymous = client.get("/api/ice-servers/")
    assert anonymous.status_code == 401
    assert "error" in anonymous.json()
    client.force_login(user)
    post = client.post("/api/ice-servers/", {}, content_type="application/json")
    assert post.status_code == 405
    assert "error" in post.json()


def _import_settings(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Import the settings module in a fresh interpreter (they are read once, at import)."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("TURN_", "ICE_", "DEBUG"))}
    return subprocess.run(
        [sys.executable, "-c", "import fc25_denoise.settings as s; print(s.ICE_SERVERS, s.TURN_URLS)"],
        cwd=BASE_DIR,
        env={**keep, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ICE_SERVERS": "not json"}, "ICE_SERVERS must be a JSON list of RTCIceServer objects"),
        ({"ICE_SERVERS": '[{"url": "stun:x"}]'}, "ICE_SERVERS must be a JSON list like"),
        ({"ICE_SERVERS": '{"urls": "stun:x"}'}, "ICE_SERVERS must be a JSON list like"),
        (
            {"ICE_SERVERS": '[{"urls": "turn:x", "username": "u", "credential": "long-lived"}]'},
            "ICE_SERVERS must not carry credentials",
        ),
        ({"TURN_SECRET": "x"}, "TURN_SECRET is set but TURN_URLS is empty"),
        ({"TURN_SECRET": "x", "TURN_URLS": "stun:x"}, "TURN_URLS must be turn: or turns: URLs"),
        ({"TURN_SECRET": "x", "TURN_URLS": "turn:x", "TURN_TTL_S": "5"}, "TURN_TTL_S must be at least 60"),
    ],
)
def test_bad_ice_configuration_is_refused_at_start(env: dict[str, str], message: str) -> None:
    result = _import_settings(env)
    assert result.returncode != 0
    assert f"ImproperlyConfigured: {message}" in result.stderr


def test_good_ice_configuration_is_read() -> None:
    env: dict[str, Any] = {
        "ICE_SERVERS": '[{"urls": ["stun:a:3478", "stun:b:3478"]}]',
        "TURN_SECRET": "x",
        "TURN_URLS": "turn:t:3478?transport=udp, turns:t:5349",
    }
    result = _import_settings(env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "[{'urls': ['stun:a:3478', 'stun:b:3478']}] ['turn:t:3478?transport=udp', 'turns:t:5349']"
    )
