"""The page views: login required, the friend page's 200 / 403 / 404, what each page carries."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from django.test import Client
from pytest_django.asserts import assertTemplateUsed

from users.models import FriendRequest, User

ClientFor = Callable[[User], Client]


def json_script(html: str, element_id: str) -> object:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html)
    assert match is not None, f"no json_script {element_id!r}"
    return json.loads(match.group(1))


@pytest.mark.parametrize("path", ["/", "/friend/alice/"])
def test_pages_send_anonymous_visitors_to_login(client: Client, alice: User, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_main_page_has_the_sidebar_the_panel_and_its_data(
    alice: User, client_for: ClientFor, settings: object
) -> None:
    settings.ICE_SERVERS = [{"urls": "stun:stun.example.org:3478"}]  # type: ignore[attr-defined]
    response = client_for(alice).get("/")
    html = response.content.decode()
    assert response.status_code == 200
    assertTemplateUsed(response, "frontend/main.html")
    assert json_script(html, "ice-servers") == [{"urls": "stun:stun.example.org:3478"}]
    assert json_script(html, "me") == "alice"
    assert json_script(html, "noise-preference") == {"denoise": True, "atten_lim_db": 100.0}
    for landmark in (
        'id="search"',
        'id="friend-list"',
        'id="incoming-list"',
        'id="stream-toggle"',
        'id="presets"',
    ):
        assert landmark in html
    assert 'src="/static/js/main.js"' in html
    assert 'type="module"' in html


def test_friend_page_of_a_friend(alice: User, bob: User, befriend: Callable, client_for: ClientFor) -> None:
    befriend(alice, bob)
    response = client_for(bob).get("/friend/alice/")
    html = response.content.decode()
    assert response.status_code == 200
    assertTemplateUsed(response, "frontend/friend_page.html")
    assert json_script(html, "friend-username") == "alice"
    assert json_script(html, "ice-servers") == []
    assert 'id="listen-toggle"' in html
    assert 'id="live-audio"' in html
    assert 'src="/static/js/friend_page.js"' in html


def test_friend_page_of_a_stranger_is_403_and_says_why(alice: User, bob: User, client_for: ClientFor) -> None:
    response = client_for(bob).get("/friend/alice/")
    html = response.content.decode()
    assert response.status_code == 403
    assertTemplateUsed(response, "frontend/friend_forbidden.html")
    assert "You and alice are not friends" in html
    assert 'id="send-request"' in html  # offers the way out
    assert "friend_page.js" not in html


def test_forbidden_page_fits_a_pending_request(alice: User, bob: User, client_for: ClientFor) -> None:
    FriendRequest.objects.create(from_user=bob, to_user=alice)
    sent = client_for(bob).get("/friend/alice/").content.decode()
    received = client_for(alice).get("/friend/bob/").content.decode()
    assert "Your friend request to alice is waiting" in sent
    assert 'id="send-request"' not in sent
    assert "bob has sent you a friend request" in received


def test_friend_page_of_an_unknown_user_is_404(alice: User, client_for: ClientFor) -> None:
    response = client_for(alice).get("/friend/nobody/")
    assert response.status_code == 404
    assertTemplateUsed(response, "frontend/friend_not_found.html")
    assert "There is no user called “nobody”" in response.content.decode()


def test_not_found_page_escapes_the_name(alice: User, client_for: ClientFor) -> None:
    response = client_for(alice).get("/friend/%3Cb%3Ex/")
    assert response.status_code == 404
    assert "<b>x" not in response.content.decode()
    assert "&lt;b&gt;x" in response.content.decode()


def test_friend_page_url_is_canonical_in_case(
    alice: User, bob: User, befriend: Callable, client_for: ClientFor
) -> None:
    befriend(alice, bob)
    response = client_for(bob).get("/friend/ALICE/")
    assert response.status_code == 302
    assert response["Location"] == "/friend/alice/"


def test_own_page_shows_recordings_without_a_listen_button(alice: User, client_for: ClientFor) -> None:
    response = client_for(alice).get("/friend/alice/")
    html = response.content.decode()
    assert response.status_code == 200
    assert '<h1 id="friend-heading">Your recordings</h1>' in html
    assert json_script(html, "is-self") is True
    assert 'id="listen-toggle"' not in html
    assert 'id="recordings"' in html
