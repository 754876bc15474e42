"""The remembered noise choice: GET/PATCH /api/me/noise/, and the main page starting from it."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from users.models import User
from users.tests.conftest import ClientFor, db_snapshot


@pytest.mark.django_db
def test_the_choice_is_kept_for_the_account(alice: User, client_for: ClientFor) -> None:
    phone, laptop = client_for(alice), client_for(alice)
    assert phone.get("/api/me/noise/").json() == {"denoise": True, "atten_lim_db": 100.0}
    response = phone.patch("/api/me/noise/", {"atten_lim_db": 15}, content_type="application/json")
    assert response.json() == {"denoise": True, "atten_lim_db": 15.0}
    phone.patch("/api/me/noise/", {"denoise": False}, content_type="application/json")
    assert laptop.get("/api/me/noise/").json() == {"denoise": False, "atten_lim_db": 15.0}
    # the main page starts with it, on every device
    html = laptop.get("/").content.decode()
    match = re.search(r'<script id="noise-preference" type="application/json">(.*?)</script>', html)
    assert match is not None
    assert json.loads(match.group(1)) == {"denoise": False, "atten_lim_db": 15.0}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {},
        {"denoise": "yes"},
        {"denoise": 1},
        {"atten_lim_db": 101},
        {"atten_lim_db": -1},
        {"atten_lim_db": True},
        {"atten_lim_db": "15"},
        {"denoise": True, "strength": 3},
        ["denoise"],
        "off",
    ],
)
def test_bad_changes_are_refused_and_change_nothing(alice: User, client_for: ClientFor, body: object) -> None:
    client = client_for(alice)  # signing in changes last_login: before the snapshot
    before = db_snapshot()
    response = client.patch("/api/me/noise/", body, content_type="application/json")
    assert response.status_code == 400
    assert set(response.json()) == {"error"}
    assert db_snapshot() == before


@pytest.mark.django_db
def test_refusals_without_a_session_or_the_csrf_token(alice: User) -> None:
    assert Client().get("/api/me/noise/").status_code in (401, 403)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    before = db_snapshot()
    response = client.patch("/api/me/noise/", {"denoise": False}, content_type="application/json")
    assert response.status_code == 403
    assert set(response.json()) == {"error"}
    assert db_snapshot() == before
    plain = Client()
    plain.force_login(alice)
    response = plain.patch("/api/me/noise/", b"{nope", content_type="application/json")
    assert (response.status_code, set(response.json())) == (400, {"error"})
