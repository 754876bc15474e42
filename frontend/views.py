"""Page views: thin, they render templates; the pages talk to the JSON API."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


@login_required
def main_view(request: HttpRequest) -> HttpResponse:
    return render(request, "frontend/main.html")
