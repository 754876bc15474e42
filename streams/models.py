"""What survives a restart about streams: the recordings."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Recording(models.Model):
    """One live stream's files under MEDIA_ROOT/recordings/<username>/.

    Paths are relative to MEDIA_ROOT. `finished` turns true when the files are closed,
    either at the stream's end or by start-up recovery after a crash (`recovered`).
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recordings")
    title = models.CharField(max_length=100, blank=True, default="")  # "" shows as the date
    started_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration_s = models.FloatField(default=0.0)
    size_bytes = models.BigIntegerField(default=0)
    denoise = models.BooleanField(default=True)
    atten_lim_db = models.FloatField(default=100.0)
    audio_path = models.CharField(max_length=255)
    raw_path = models.CharField(max_length=255, blank=True, default="")
    finished = models.BooleanField(default=False)
    recovered = models.BooleanField(default=False)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["owner", "-started_at"])]

    def __str__(self) -> str:
        return f"Recording {self.pk} of {self.owner_id} at {self.started_at:%Y-%m-%d %H:%M}"
