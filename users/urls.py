"""Account pages, under /accounts/."""

from django.contrib.auth import views as auth_views
from django.urls import URLPattern, path

from users import throttling, views

urlpatterns: list[URLPattern] = [
    path("register/", throttling.sign_up(views.register_view), name="register"),
    path(
        "login/",
        throttling.sign_in(auth_views.LoginView.as_view(redirect_authenticated_user=True)),
        name="login",
    ),
    # Django's LogoutView accepts POST only (GET is a 405) and redirects to LOGOUT_REDIRECT_URL.
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
