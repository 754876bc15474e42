"""`python -m testing.seed '{"migrate": bool, "users": [...], "friendships": [[a, b], ...]}'`:
migrate the database of DATABASE_URL (if asked), create the users (password
`testing.people.PASSWORD`) and friendships, and print one JSON line {username: session key}.
Run by `testing.postgres`.
"""

from __future__ import annotations

import json
import sys

import django


def main(spec: dict[str, list]) -> dict[str, str]:
    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    from testing.people import PASSWORD
    from users.models import Friendship, User

    if spec["migrate"]:
        call_command("migrate", verbosity=0, interactive=False)
    made = {name: User.objects.create_user(username=name, password=PASSWORD) for name in spec["users"]}
    for a, b in spec["friendships"]:
        low, high = sorted((made[a], made[b]), key=lambda u: u.pk)
        Friendship.objects.create(user_a=low, user_b=high)
    sessions = {}
    for name, user in made.items():
        client = Client()
        client.force_login(user)
        sessions[name] = client.cookies[settings.SESSION_COOKIE_NAME].value
    return sessions


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
