"""Accounts and the friend graph."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower


class CaseInsensitiveUserManager(UserManager["User"]):
    """Usernames are unique regardless of case, so logging in as "ALICE" finds alice."""

    def get_by_natural_key(self, username: str | None) -> User:
        return self.get(username__iexact=username)


class User(AbstractUser):
    is_streaming = models.BooleanField(default=False)
    is_online = models.BooleanField(default=False)
    # The broadcaster's noise choice, remembered across sessions and devices (users.preferences).
    noise_denoise = models.BooleanField(default=True)
    noise_atten_lim_db = models.FloatField(default=100.0)

    objects = CaseInsensitiveUserManager()

    class Meta:
        constraints = [models.UniqueConstraint(Lower("username"), name="username_ci_unique")]


class Friendship(models.Model):
    """One row per unordered pair, stored with user_a.id < user_b.id."""

    user_a = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    user_b = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_a", "user_b"], name="friendship_pair_unique"),
            # Canonical order also forbids self-friendship (a < a is false).
            models.CheckConstraint(condition=Q(user_a__lt=F("user_b")), name="friendship_ordered_pair"),
        ]

    def __str__(self) -> str:
        return f"{self.user_a_id} <-> {self.user_b_id}"


class FriendRequest(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        ACCEPTED = "accepted"
        REJECTED = "rejected"
        CANCELLED = "cancelled"

    from_user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="sent_requests")
    to_user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="received_requests")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["from_user", "to_user"],
                condition=Q(status="pending"),
                name="one_pending_request_per_pair",
            ),
            models.CheckConstraint(condition=~Q(from_user=F("to_user")), name="no_request_to_self"),
        ]
        indexes = [models.Index(fields=["to_user", "status"])]

    def __str__(self) -> str:
        return f"{self.from_user_id} -> {self.to_user_id} ({self.status})"
