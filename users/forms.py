"""Account forms."""

from __future__ import annotations

from django.contrib.auth.forms import UserCreationForm

from users.models import User


class RegisterForm(UserCreationForm):
    """username + password1 + password2; Django's form already refuses names differing only in case."""

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username",)

    def add_taken_error(self) -> None:
        """For the race the form check cannot see: another sign-up took the name meanwhile."""
        self.add_error("username", "A user with that username already exists.")
