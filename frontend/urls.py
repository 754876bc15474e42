from django.urls import path

from frontend import views

urlpatterns = [
    path("", views.main_view, name="main"),
    path("friend/<str:username>/", views.friend_page, name="friend_page"),
]
