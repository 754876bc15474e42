"""Every endpoint against inputs a client should not send: a 4xx JSON error, and no change at all."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from users import friendships
from users.models import User
from users.tests.conftest import MakeUser, db_snapshot

JSON = "application/json"
HUGE = "9" * 5000  # int() refuses to parse this many digits
Case = tuple[str, str, Any, int]  # method, path, body (bytes are sent raw), expected status


@pytest.fixture
def ids(make_user: MakeUser) -> dict[str, int]:
    """alice's world: friends with bob, asked by carol, asking dave; bob asked carol."""
    alice, bob, carol, _ = (make_user(name) for name in ("alice", "bob", "carol", "dave"))
    done = friendships.accept(alice, friendships.send_request(bob, "alice").pk)
    return {
        "incoming": friendships.send_request(carol, "alice").pk,
        "outgoing": friendships.send_request(alice, "dave").pk,
        "done": done.pk,  # bob -> alice, accepted
        "foreign": friendships.send_request(bob, "carol").pk,
    }


def _send(client: Client, method: str, path: str, body: Any) -> Any:
    if isinstance(body, tuple):  # (content type, raw body)
        content_type, data = body
    else:
        content_type = JSON
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    return client.generic(method, path, data=data or b"", content_type=content_type)


def _assert_refused(client: Client, method: str, path: str, body: Any, status: int) -> None:
    before = db_snapshot()
    response = _send(client, method, path, body)
    assert response.status_code == status, (method, path, body, response.content[:300])
    assert response["Content-Type"] == JSON
    payload = response.json()
    assert list(payload) == ["error"]
    assert isinstance(payload["error"], str)
    assert payload["error"]
    assert db_snapshot() == before


def _decision(verb: str, request_id: str) -> str:
    """A decision URL; `request_id` may be a placeholder like "{incoming}" filled in per test."""
    return f"/api/friend-request/{request_id}/{verb}/"


ALICE_CASES: list[Case] = [
    # GET /api/search/
    ("POST", "/api/search/", {"q": "bob"}, 405),
    ("DELETE", "/api/search/", None, 405),
    # GET /api/friends/
    ("POST", "/api/friends/", {"username": "bob"}, 405),
    # DELETE /api/friends/<username>/
    ("DELETE", "/api/friends/nobody/", None, 404),
    ("DELETE", "/api/friends/ALICE/", None, 400),
    ("DELETE", "/api/friends/dave/", None, 404),  # only a pending request
    ("DELETE", "/api/friends/carol/", None, 404),
    ("DELETE", "/api/friends/%00/", None, 404),
    ("DELETE", "/api/friends/bo%00b/", None, 404),
    ("DELETE", "/api/friends/%ED%A0%80/", None, 404),
    ("DELETE", "/api/friends/" + "x" * 5000 + "/", None, 404),
    ("DELETE", "/api/friends/'%20OR%201=1%20--/", None, 404),
    ("DELETE", "/api/friends/bob", None, 404),  # no trailing slash
    ("GET", "/api/friends/bob/", None, 405),
    ("POST", "/api/friends/bob/", {}, 405),
    # POST /api/friend-request/
    ("POST", "/api/friend-request/", b"{", 400),
    ("POST", "/api/friend-request/", b"", 400),
    ("POST", "/api/friend-request/", [], 400),
    ("POST", "/api/friend-request/", ["bob"], 400),
    ("POST", "/api/friend-request/", "bob", 400),
    ("POST", "/api/friend-request/", b"null", 400),
    ("POST", "/api/friend-request/", 5, 400),
    ("POST", "/api/friend-request/", True, 400),
    ("POST", "/api/friend-request/", {}, 400),
    ("POST", "/api/friend-request/", {"user": "bob"}, 400),
    ("POST", "/api/friend-request/", {"username": 5}, 400),
    ("POST", "/api/friend-request/", {"username": 1.5}, 400),
    ("POST", "/api/friend-request/", {"username": None}, 400),
    ("POST", "/api/friend-request/", {"username": True}, 400),
    ("POST", "/api/friend-request/", {"username": ["bob"]}, 400),
    ("POST", "/api/friend-request/", {"username": {"name": "bob"}}, 400),
    ("POST", "/api/friend-request/", {"username": ""}, 400),
    ("POST", "/api/friend-request/", {"username": "   "}, 400),
    ("POST", "/api/friend-request/", {"username": "x" * 151}, 400),
    ("POST", "/api/friend-request/", {"username": "x" * 5000}, 400),
    ("POST", "/api/friend-request/", {"username": "bo\x00b"}, 400),
    ("POST", "/api/friend-request/", b'{"username": "\\ud800"}', 400),  # lone surrogate
    ("POST", "/api/friend-request/", b'{"username": NaN}', 400),
    ("POST", "/api/friend-request/", b'{"username": "\xff\xfe"}', 400),  # not UTF-8
    ("POST", "/api/friend-request/", b"[" * 5000 + b"]" * 5000, 400),  # deeper than Python recurses
    ("POST", "/api/friend-request/", {"username": "Alice"}, 400),  # yourself
    ("POST", "/api/friend-request/", {"username": "nobody"}, 404),
    ("POST", "/api/friend-request/", {"username": "' OR 1=1 --"}, 404),
    ("POST", "/api/friend-request/", {"username": "BOB"}, 409),  # already friends
    ("POST", "/api/friend-request/", {"username": "dave"}, 409),  # already pending
    ("POST", "/api/friend-request/", ("application/x-www-form-urlencoded", b"username=bob"), 415),
    ("POST", "/api/friend-request/", ("text/plain", b"bob"), 415),
    ("POST", "/api/friend-request/", {"username": "bob", "pad": "x" * 70_000}, 413),
    ("POST", "/api/friend-request", {"username": "carol"}, 404),  # no trailing slash
    ("GET", "/api/friend-request/", None, 405),
    ("PUT", "/api/friend-request/", {"username": "carol"}, 405),
    # GET /api/friend-requests/
    ("POST", "/api/friend-requests/", {"username": "carol"}, 405),
    ("DELETE", "/api/friend-requests/", None, 405),
    # POST /api/friend-request/<id>/accept|reject|cancel/
    ("POST", _decision("accept", "{outgoing}"), None, 403),  # my own request
    ("POST", _decision("reject", "{outgoing}"), None, 403),
    ("POST", _decision("cancel", "{incoming}"), None, 403),  # someone else's request to me
    ("POST", _decision("accept", "{foreign}"), None, 404),  # not mine at all
    ("POST", _decision("reject", "{foreign}"), None, 404),
    ("POST", _decision("cancel", "{foreign}"), None, 404),
    ("POST", _decision("accept", "{done}"), None, 409),
    ("POST", _decision("reject", "{done}"), None, 409),
    ("POST", _decision("accept", "987654321"), None, 404),
    ("POST", _decision("accept", "0"), None, 404),
    ("POST", _decision("accept", "-1"), None, 404),
    ("POST", _decision("accept", "abc"), None, 404),
    ("POST", _decision("accept", str(2**63)), None, 404),  # one past bigint
    ("POST", _decision("cancel", str(10**60)), None, 404),
    ("POST", _decision("reject", HUGE), None, 404),
    ("POST", "/api/friend-request/{incoming}/destroy/", None, 404),
    ("POST", "/api/friend-request/{incoming}/accept", None, 404),
    ("GET", _decision("accept", "{incoming}"), None, 405),
    ("DELETE", _decision("cancel", "{outgoing}"), None, 405),
    # Nothing there
    ("GET", "/api/nothing-here/", None, 404),
]

# (method, path) of every endpoint, with a body that would succeed if the caller were allowed.
EVERY_ENDPOINT: list[tuple[str, str, Any]] = [
    ("GET", "/api/search/?q=bob", None),
    ("GET", "/api/friends/", None),
    ("DELETE", "/api/friends/bob/", None),
    ("POST", "/api/friend-request/", {"username": "carol"}),
    ("GET", "/api/friend-requests/", None),
    ("POST", _decision("accept", "{incoming}"), None),
    ("POST", _decision("reject", "{incoming}"), None),
    ("POST", _decision("cancel", "{outgoing}"), None),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), ALICE_CASES)
def test_bad_input_is_refused(
    ids: dict[str, int], client_for: Any, method: str, path: str, body: Any, status: int
) -> None:
    client = client_for(User.objects.get(username="alice"))
    _assert_refused(client, method, path.format(**ids), body, status)


@pytest.mark.parametrize(("method", "path", "body"), EVERY_ENDPOINT)
def test_anonymous_gets_401(ids: dict[str, int], method: str, path: str, body: Any) -> None:
    _assert_refused(Client(), method, path.format(**ids), body, 401)


@pytest.mark.parametrize(("method", "path", "body"), [e for e in EVERY_ENDPOINT if e[0] != "GET"])
def test_missing_csrf_token_gets_403(ids: dict[str, int], method: str, path: str, body: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.get(username="alice"))
    _assert_refused(client, method, path.format(**ids), body, 403)
    client.cookies["csrftoken"] = "a" * 32
    wrong = Client(enforce_csrf_checks=True, headers={"X-CSRFToken": "b" * 32})  # present but wrong
    wrong.cookies = client.cookies
    _assert_refused(wrong, method, path.format(**ids), body, 403)


@pytest.mark.parametrize(("method", "path", "body"), EVERY_ENDPOINT)
def test_every_endpoint_works_for_alice(
    ids: dict[str, int], client_for: Any, method: str, path: str, body: Any
) -> None:
    """The same requests do succeed when allowed, so the refusals above are about the input."""
    response = _send(client_for(User.objects.get(username="alice")), method, path.format(**ids), body)
    assert response.status_code in (200, 201, 204), response.content
