"""`python -m testing.seed '{"migrate": bool, "users": [...], "friendships": [[a, b], ...]}'`:
migrate the database of DATABASE_URL (if asked), create the users (password
`testing.people.PASSWORD`) and friendships, and print one JSON line {username: session key}.
Run by `testing.postgres`.
"""

from __future__ import annotations

import json
import sys

import django


def people(users: list[str], friendships: list[tuple[str, str]], password: str | None) -> dict[str, str]:
    """Create the users (with `password`, or none) and friendships in the configured database;
    return {username: session key} of a signed-in session for each. Django must be set up."""
    from django.conf import settings
    from django.test import Client

    from users.models import Friendship, User

    made = {name: User.objects.create_user(username=name, password=password) for name in users}
    for a, b in friendships:
        low, high = sorted((made[a], made[b]), key=lambda u: u.pk)
        Friendship.objects.create(user_a=low, user_b=high)
    sessions = {}
    for name, user in made.items():
        client = Client()
        client.force_login(user)
        sessions[name] = client.cookies[settings.SESSION_COOKIE_NAME].value
    return sessions


def main(spec: dict[str, list]) -> dict[str, str]:
    django.setup()
    from django.core.management import call_command

    from testing.people import PASSWORD

    if spec["migrate"]:
        call_command("migrate", verbosity=0, interactive=False)
    return people(spec["users"], [tuple(pair) for pair in spec["friendships"]], PASSWORD)


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
