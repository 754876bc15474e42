"""Friends API routes, under /api/. A missing trailing slash is a JSON 404, not a redirect."""

from django.urls import URLPattern, path
from django.views.decorators.common import no_append_slash

from users import api

urlpatterns: list[URLPattern] = [
    path(
        "me/noise/",
        no_append_slash(api.noise),
        name="api-noise-preference",
    ),
    path("search/", no_append_slash(api.search), name="api-search"),
    path("friends/", no_append_slash(api.friend_list), name="api-friends"),
    path("friends/<str:username>/", no_append_slash(api.unfriend), name="api-friend"),
    path("friend-request/", no_append_slash(api.send_request), name="api-friend-request"),
    path("friend-requests/", no_append_slash(api.pending_requests), name="api-friend-requests"),
    *(
        path(
            f"friend-request/<int:request_id>/{decision}/",
            no_append_slash(api.decide),
            {"decision": decision},
            name=f"api-friend-request-{decision}",
        )
        for decision in api.DECISIONS
    ),
]
