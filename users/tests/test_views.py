"""Account pages: register, log in, log out."""

from __future__ import annotations

import pytest
from django.test import Client

from users.forms import RegisterForm
from users.models import User
from users.tests.conftest import PASSWORD, MakeUser

NEW_PASSWORD = "a-Long-enough-passw0rd"


def _register(client: Client, username: str, password2: str = NEW_PASSWORD) -> object:
    return client.post(
        "/accounts/register/",
        {"username": username, "password1": NEW_PASSWORD, "password2": password2},
    )


def _logged_in_as(client: Client) -> str | None:
    response = client.get("/")
    return response.context["user"].username if response.status_code == 200 else None


def test_register_page_links_to_login(db: None) -> None:
    page = Client().get("/accounts/register/")
    assert page.status_code == 200
    html = page.content.decode()
    for needle in (
        'name="csrfmiddlewaretoken"',
        'name="password1"',
        'name="password2"',
        'href="/accounts/login/"',
    ):
        assert needle in html


def test_register_logs_in_and_goes_home(db: None) -> None:
    client = Client()
    response = _register(client, "Newcomer")
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert _logged_in_as(client) == "Newcomer"
    assert User.objects.get().check_password(NEW_PASSWORD)


@pytest.mark.parametrize("name", ["alice", "ALICE", "Alice"])
def test_register_refuses_a_taken_name_in_any_case(alice: User, name: str) -> None:
    client = Client()
    response = _register(client, name)
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert User.objects.count() == 1
    assert _logged_in_as(client) is None


@pytest.mark.parametrize(
    ("username", "password2", "message"),
    [
        ("dora", "something-else-42", "The two password fields didn"),
        ("dora the explorer", NEW_PASSWORD, "Enter a valid username"),
        ("", NEW_PASSWORD, "This field is required"),
    ],
)
def test_register_shows_form_errors(db: None, username: str, password2: str, message: str) -> None:
    response = _register(Client(), username, password2)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not User.objects.exists()


def test_register_applies_password_validators(db: None) -> None:
    response = Client().post(
        "/accounts/register/", {"username": "dora", "password1": "12345678", "password2": "12345678"}
    )
    assert response.status_code == 200
    assert "too common" in response.content.decode()
    assert not User.objects.exists()


def test_register_race_on_the_same_name_is_a_form_error(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another sign-up takes the name between the form's check and the insert: no 500."""
    save = RegisterForm.save

    def racing_save(self: RegisterForm, commit: bool = True) -> User:
        User.objects.create_user(username="RACER", password="x")
        return save(self, commit)

    monkeypatch.setattr(RegisterForm, "save", racing_save)
    response = _register(Client(), "racer")
    assert response.status_code == 200
    assert "already exists" in response.content.decode()


def test_register_needs_csrf(db: None) -> None:
    response = _register(Client(enforce_csrf_checks=True), "dora")
    assert response.status_code == 403
    assert not User.objects.exists()


def test_anonymous_home_goes_to_login(db: None) -> None:
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_login_page_links_to_register(db: None) -> None:
    html = Client().get("/accounts/login/").content.decode()
    assert 'href="/accounts/register/"' in html
    assert 'name="csrfmiddlewaretoken"' in html


@pytest.mark.parametrize("typed", ["Alice", "alice", "ALICE"])
def test_login_any_case(make_user: MakeUser, typed: str) -> None:
    make_user("Alice")
    client = Client()
    response = client.post("/accounts/login/", {"username": typed, "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert _logged_in_as(client) == "Alice"


def test_login_wrong_password(alice: User) -> None:
    client = Client()
    response = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert _logged_in_as(client) is None


def test_logout_is_post_only(alice: User) -> None:
    client = Client()
    client.force_login(alice)
    assert client.get("/accounts/logout/").status_code == 405
    assert _logged_in_as(client) == "alice"
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert _logged_in_as(client) is None


def test_home_shows_the_logout_form(alice: User) -> None:
    client = Client()
    client.force_login(alice)
    assert 'action="/accounts/logout/"' in client.get("/").content.decode()
