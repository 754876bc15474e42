"""Root routing: pages, accounts, the JSON API and the admin."""

from django.contrib import admin
from django.urls import include, path, re_path

from fc25_denoise.api import not_found as api_not_found
from fc25_denoise.health import healthz
from fc25_denoise.ice import ice_servers_view
from streams.live.views import metrics
from users import throttling

urlpatterns = [
    # The admin's sign-in has the same per-address limit as the site's (users/throttling.py).
    path("admin/login/", throttling.sign_in(admin.site.login)),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("api/ice-servers/", ice_servers_view, name="ice-servers"),
    path("accounts/", include("users.urls")),
    path("api/", include("users.api_urls")),
    path("api/", include("streams.urls")),
    path("", include("frontend.urls")),
]

# JSON errors for /api/ paths, Django's pages elsewhere (fc25_denoise.api).
handler400 = "fc25_denoise.api.bad_request"
handler403 = "fc25_denoise.api.permission_denied"
handler404 = "fc25_denoise.api.not_found"
handler500 = "fc25_denoise.api.server_error"
# Last: any other /api/ path is a JSON 404 even with DEBUG on (which bypasses handler404), and an
# unslashed API path is never redirected (CommonMiddleware can't redirect a POST).
urlpatterns += [re_path(r"^api/", api_not_found)]
