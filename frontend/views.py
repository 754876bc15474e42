"""Page views: thin, they render templates; the pages talk to the JSON API."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from fc25_denoise.errors import NotFound
from fc25_denoise.ice import ice_servers_for
from users import friendships, preferences


@login_required
def main_view(request: HttpRequest) -> HttpResponse:
    context = {
        "ice_servers": ice_servers_for(request.user),
        "noise_preference": preferences.noise_of(request.user),
    }
    return render(request, "frontend/main.html", context)


@login_required
def friend_page(request: HttpRequest, username: str) -> HttpResponse:
    """A friend's live stream and recordings; your own page shows your recordings."""
    try:
        friend = friendships.find_user(username)
    except NotFound:
        return render(request, "frontend/friend_not_found.html", {"username": username}, status=404)
    if friend.username != username:  # usernames match case-insensitively; keep one URL per user
        return redirect("friend_page", username=friend.username)
    is_self = friend.pk == request.user.pk
    if not is_self and not friendships.are_friends(request.user, friend):
        context = {"friend": friend, "relation": friendships.relation(request.user, friend)}
        return render(request, "frontend/friend_forbidden.html", context, status=403)
    context = {"friend": friend, "is_self": is_self, "ice_servers": ice_servers_for(request.user)}
    return render(request, "frontend/friend_page.html", context)
