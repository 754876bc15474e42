"""Friends JSON API: fc25_denoise.api checks the caller and the body; these call users.friendships
(in a database thread) and shape the answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse

from fc25_denoise.api import combine, endpoint, reply
from fc25_denoise.errors import BadRequest
from users import friendships, preferences
from users.models import FriendRequest, User
from users.serializers import request_detail, request_item, search_result, user_summary


@endpoint("GET")
async def search(request: HttpRequest, user: User) -> JsonResponse:
    return reply(await sync_to_async(_search)(user, request.GET.get("q", "")))


def _search(user: User, query: str) -> list[dict[str, Any]]:
    found = friendships.search(user, query)
    relation = friendships.relations(user, [other.pk for other in found])
    return [search_result(other, relation[other.pk]) for other in found]


@endpoint("GET")
async def friend_list(request: HttpRequest, user: User) -> JsonResponse:
    return reply(await sync_to_async(lambda: [user_summary(f) for f in friendships.friends_of(user)])())


@endpoint("DELETE")
async def unfriend(request: HttpRequest, user: User, username: str) -> HttpResponse:
    await sync_to_async(friendships.unfriend)(user, username)
    return HttpResponse(status=204)


@endpoint("GET")
async def pending_requests(request: HttpRequest, user: User) -> JsonResponse:
    incoming, outgoing = await sync_to_async(friendships.pending_requests)(user)
    return reply(
        {
            "incoming": [request_item(item, item.from_user) for item in incoming],
            "outgoing": [request_item(item, item.to_user) for item in outgoing],
        }
    )


def username_field(body: dict[str, Any]) -> str:
    """The body's "username": a non-blank string a username column can hold."""
    value = body.get("username")
    if not isinstance(value, str) or not value.strip():
        raise BadRequest('"username" must be a non-empty string.')
    value = value.strip()
    if len(value) > friendships.USERNAME_MAX or not friendships.storable(value):
        raise BadRequest(f'"username" must be at most {friendships.USERNAME_MAX} characters, without NUL.')
    return value


@endpoint("POST", json_body=True)
async def send_request(request: HttpRequest, user: User, body: dict[str, Any]) -> JsonResponse:
    sent = await sync_to_async(_send)(user, username_field(body))
    # Completing a crossed request creates nothing new, hence 200 rather than 201.
    return reply(sent, status=201 if sent["status"] == FriendRequest.Status.PENDING else 200)


def _send(user: User, username: str) -> dict[str, Any]:
    return request_detail(friendships.send_request(user, username))


DECISIONS: dict[str, Callable[[User, int], FriendRequest]] = {
    "accept": friendships.accept,
    "reject": friendships.reject,
    "cancel": friendships.cancel,
}


@endpoint("POST")
async def decide(request: HttpRequest, user: User, request_id: int, decision: str) -> JsonResponse:
    """accept / reject (addressee only) and cancel (sender only); the URL conf passes `decision`."""
    decided = await sync_to_async(lambda: request_detail(DECISIONS[decision](user, request_id)))()
    return reply(decided)


@endpoint("GET")
async def noise_preference(request: HttpRequest, user: User) -> JsonResponse:
    """GET /api/me/noise/: the caller's remembered noise choice {denoise, atten_lim_db}."""
    return reply(preferences.noise_of(user))


@endpoint("PATCH", json_body=True)
async def change_noise_preference(request: HttpRequest, user: User, body: dict[str, Any]) -> JsonResponse:
    return reply(await sync_to_async(preferences.update_noise)(user, body))


noise = combine(noise_preference, change_noise_preference)
