"""Demo accounts for trying the app: alice, bob, carol, dave.

alice and bob are friends, carol has asked alice. Idempotent: existing users keep their
password, and a pair that already has any friend-request history is left as the users made it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.db.models import Q

from users import friendships
from users.models import FriendRequest, User

DEMO_USERS = ("alice", "bob", "carol", "dave")
DEMO_PASSWORD = "quiet-river-2025"  # noqa: S105 - printed on purpose, demo accounts only


class Command(BaseCommand):
    help = "Create demo users (alice, bob, carol, dave) and a few friendships. Safe to run twice."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force", action="store_true", help="Seed even with DEBUG off (known password!)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["force"]:
            self.stdout.write("DEBUG is off: demo users not created (use --force to create them anyway).")
            return
        with transaction.atomic():
            users = {name: self._user(name) for name in DEMO_USERS}
            if self._untouched(users["alice"], users["bob"]):
                request = friendships.send_request(users["alice"], "bob")
                friendships.accept(users["bob"], request.pk)
            if self._untouched(users["carol"], users["alice"]):
                friendships.send_request(users["carol"], "alice")
        self.stdout.write(
            f"Demo users: {', '.join(DEMO_USERS)}. Password for new ones: {DEMO_PASSWORD}\n"
            "alice and bob are friends; carol has sent alice a friend request."
        )

    def _user(self, name: str) -> User:
        user = User.objects.filter(username__iexact=name).first()
        if user is None:
            user = User.objects.create_user(username=name, password=DEMO_PASSWORD)
            self.stdout.write(f"Created {name}.")
        return user

    @staticmethod
    def _untouched(a: User, b: User) -> bool:
        """No friendship and no request ever between them: seeding them won't undo a user's choice."""
        history = FriendRequest.objects.filter(Q(from_user=a, to_user=b) | Q(from_user=b, to_user=a)).exists()
        return not history and not friendships.are_friends(a, b)
