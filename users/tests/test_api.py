"""The friends API as a browser uses it: real sign-up, session cookies, CSRF header."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from users import friendships
from users.models import FriendRequest, User
from users.tests.conftest import ClientFor, MakeUser

PASSWORD = "a-Long-enough-passw0rd"


def _sign_up(username: str) -> Client:
    """Register through the page with CSRF enforced, like a browser; return the logged-in client."""
    client = Client(enforce_csrf_checks=True)
    page = client.get("/accounts/register/")
    assert page.status_code == 200
    response = client.post(
        "/accounts/register/",
        {
            "username": username,
            "password1": PASSWORD,
            "password2": PASSWORD,
            "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
        },
    )
    assert response.status_code == 302, response.content
    return _with_csrf_header(client)


def _with_csrf_header(client: Client) -> Client:
    """A client with the same cookies that sends the CSRF cookie's token as X-CSRFToken (rotated at login)."""
    signed = Client(enforce_csrf_checks=True, headers={"X-CSRFToken": client.cookies["csrftoken"].value})
    signed.cookies = client.cookies
    return signed


def _names(rows: list[dict[str, Any]]) -> list[str]:
    return [row["username"] for row in rows]


def test_two_new_users_become_friends_and_part(db: None) -> None:
    alice, bob = _sign_up("alice"), _sign_up("Bob")

    found = alice.get("/api/search/", {"q": "BO"}).json()
    # A stranger's result carries no presence (is_online / is_streaming): only friends see that.
    assert found == [{"id": User.objects.get(username="Bob").pk, "username": "Bob", "relation": "none"}]

    sent = alice.post("/api/friend-request/", {"username": "bob"}, content_type="application/json")
    assert sent.status_code == 201
    body = sent.json()
    assert (body["status"], body["from_user"], body["to_user"]) == ("pending", "alice", "Bob")
    assert set(body) == {"id", "status", "from_user", "to_user", "created_at"}
    assert alice.get("/api/search/", {"q": "bob"}).json()[0]["relation"] == "request_sent"
    assert bob.get("/api/search/", {"q": "ali"}).json()[0]["relation"] == "request_received"

    pending = bob.get("/api/friend-requests/").json()
    assert pending["outgoing"] == []
    assert [(item["id"], item["username"]) for item in pending["incoming"]] == [(body["id"], "alice")]
    assert set(pending["incoming"][0]) == {"id", "username", "created_at"}
    assert _names(alice.get("/api/friend-requests/").json()["outgoing"]) == ["Bob"]

    accepted = bob.post(f"/api/friend-request/{body['id']}/accept/")
    assert accepted.status_code == 200
    assert accepted.json()["status"] == "accepted"
    assert _names(alice.get("/api/friends/").json()) == ["Bob"]
    assert bob.get("/api/friends/").json() == [
        {"id": User.objects.get(username="alice").pk, "username": "alice"}
        | {"is_online": False, "is_streaming": False}
    ]
    as_friend = alice.get("/api/search/", {"q": "bob"}).json()[0]
    assert (as_friend["relation"], as_friend["is_online"], as_friend["is_streaming"]) == (
        "friend",
        False,
        False,
    )
    assert bob.get("/api/friend-requests/").json() == {"incoming": [], "outgoing": []}

    gone = bob.delete("/api/friends/alice/")
    assert gone.status_code == 204
    assert alice.get("/api/friends/").json() == bob.get("/api/friends/").json() == []


def test_crossed_request_answers_200_accepted(alice: User, bob: User, client_for: ClientFor) -> None:
    first = client_for(alice).post(
        "/api/friend-request/", {"username": "bob"}, content_type="application/json"
    )
    crossed = client_for(bob).post(
        "/api/friend-request/", {"username": "alice"}, content_type="application/json"
    )
    assert crossed.status_code == 200
    assert crossed.json()["status"] == "accepted"
    assert crossed.json()["id"] == first.json()["id"]
    assert friendships.are_friends(alice, bob)


def test_reject_and_cancel(alice: User, bob: User, carol: User, client_for: ClientFor) -> None:
    to_bob = friendships.send_request(alice, "bob")
    to_carol = friendships.send_request(alice, "carol")
    rejected = client_for(bob).post(f"/api/friend-request/{to_bob.pk}/reject/")
    cancelled = client_for(alice).post(f"/api/friend-request/{to_carol.pk}/cancel/")
    assert (rejected.status_code, rejected.json()["status"]) == (200, "rejected")
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    assert not FriendRequest.objects.filter(status="pending").exists()
    assert friendships.friend_ids(alice) == set()


def test_unsafe_request_needs_the_csrf_token(alice: User, bob: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    refused = client.post("/api/friend-request/", {"username": "bob"}, content_type="application/json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["error"]
    assert not FriendRequest.objects.exists()
    client.get("/")  # any page with a form (here: Log out) sets the cookie
    client = _with_csrf_header(client)
    assert (
        client.post("/api/friend-request/", {"username": "bob"}, content_type="application/json").status_code
        == 201
    )


def test_search_costs_the_same_queries_for_2_or_20_results(
    make_user: MakeUser,
    client_for: ClientFor,
    django_assert_max_num_queries: Callable[..., AbstractContextManager[Any]],
) -> None:
    me = make_user("me")
    client = client_for(me)
    people = [make_user(f"pal{n:02d}") for n in range(22)]
    for pal in people[::3]:
        friendships.send_request(me, pal.username)
    counts = []
    for query in ("pal0", "pal"):
        with CaptureQueriesContext(connection) as queries:
            rows = client.get("/api/search/", {"q": query}).json()
        counts.append((len(rows), len(queries)))
    assert [rows for rows, _ in counts] == [10, 20]
    assert counts[0][1] == counts[1][1]
    with django_assert_max_num_queries(5):  # session, user, search, friendships, requests
        client.get("/api/search/", {"q": "pal"})


def test_search_oddities_answer_normally(alice: User, client_for: ClientFor) -> None:
    client = client_for(alice)
    for query in ("x" * 5000, "ünïcødé 😀", "'; DROP TABLE users_user; --", "%", "\x00", ""):
        response = client.get("/api/search/", {"q": query})
        assert response.status_code == 200, query
        assert response.json() == []
    assert client.get("/api/search/").json() == []
    assert User.objects.count() == 1


def test_unknown_api_path_and_wrong_method_are_json(alice: User, client_for: ClientFor) -> None:
    client = client_for(alice)
    unknown = client.get("/api/no-such-thing/")
    assert unknown.status_code == 404
    assert unknown["Content-Type"] == "application/json"
    assert "no API endpoint" in unknown.json()["error"]
    unslashed = client.post("/api/friend-request", {"username": "bob"}, content_type="application/json")
    assert unslashed.status_code == 404
    assert "end with a slash" in unslashed.json()["error"]
    assert "slash" not in client.get("/api/nothing").json()["error"]  # no such path either way
    wrong = client.put("/api/friends/", {}, content_type="application/json")
    assert wrong.status_code == 405
    assert wrong.json() == {"error": "Use GET here."}
    assert wrong["Allow"] == "GET, HEAD, OPTIONS"
    # Outside /api/ a missing page is still Django's HTML page.
    assert client.get("/no-such-page/")["Content-Type"].startswith("text/html")


@override_settings(DEBUG=True)
def test_unknown_api_path_is_json_with_debug_on(alice: User, client_for: ClientFor) -> None:
    """DEBUG replaces handler404 with its HTML page and makes unslashed POSTs crash; not under /api/."""
    client = client_for(alice)
    for method, path in [("GET", "/api/no-such-thing/"), ("POST", "/api/friend-request"), ("POST", "/api/x")]:
        response = client.generic(method, path)
        assert response.status_code == 404, path
        assert list(response.json()) == ["error"]
