"""Friends API routes, under /api/. A missing trailing slash is a JSON 404, not a redirect."""

from django.urls import URLPattern, path
from django.views.decorators.common import no_append_slash

from users import api

urlpatterns: list[URLPattern] = [
    path("me/noise/", no_append_slash(api.NoisePreferenceView.as_view()), name="api-noise-preference"),
    path("search/", no_append_slash(api.SearchView.as_view()), name="api-search"),
    path("friends/", no_append_slash(api.FriendListView.as_view()), name="api-friends"),
    path("friends/<str:username>/", no_append_slash(api.FriendView.as_view()), name="api-friend"),
    path(
        "friend-request/", no_append_slash(api.FriendRequestCreateView.as_view()), name="api-friend-request"
    ),
    path(
        "friend-requests/", no_append_slash(api.FriendRequestListView.as_view()), name="api-friend-requests"
    ),
    *(
        path(
            f"friend-request/<int:request_id>/{decision}/",
            no_append_slash(api.FriendRequestDecisionView.as_view()),
            {"decision": decision},
            name=f"api-friend-request-{decision}",
        )
        for decision in api.DECISIONS
    ),
]
