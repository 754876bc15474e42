"""Root routing: pages, accounts, the JSON API and the admin."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("users.urls")),
    path("api/", include("users.api_urls")),
    path("api/", include("streams.urls")),
    path("", include("frontend.urls")),
]
