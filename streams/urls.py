"""Stream, WebRTC and recording API routes (mounted under /api/)."""

from django.urls import URLPattern, path

from streams.live import views as stream_views
from streams.presence import views as presence_views
from streams.recordings import views as recording_views

urlpatterns: list[URLPattern] = [
    # <key> is a username for GET and a recording id for PATCH/DELETE (usernames may be all digits).
    path("recordings/<str:key>/", recording_views.recordings_view, name="recordings"),
    path(
        "recordings/<int:recording_id>/audio/",
        recording_views.recording_file,
        {"raw": False},
        name="recording-audio",
    ),
    path(
        "recordings/<int:recording_id>/raw/",
        recording_views.recording_file,
        {"raw": True},
        name="recording-raw",
    ),
    path("recordings/<int:recording_id>/peaks/", recording_views.recording_peaks, name="recording-peaks"),
    path(
        "recordings/<int:recording_id>/raw/peaks/",
        recording_views.recording_peaks,
        {"raw": True},
        name="recording-raw-peaks",
    ),
    # --- presence (polling fallback of ws/presence/) ---
    path("presence/", presence_views.presence, name="api-presence"),
    # --- end presence ---
    # --- live path (streams/live/views.py) ---
    path("stream/start/", stream_views.start_stream, name="stream-start"),
    path("stream/stop/", stream_views.stop_stream, name="stream-stop"),
    path("stream/settings/", stream_views.stream_settings, name="stream-settings"),
    path("stream/status/<str:username>/", stream_views.stream_status, name="stream-status"),
    path("webrtc/offer/", stream_views.webrtc_offer, name="webrtc-offer"),
    path("webrtc/listen/<str:username>/", stream_views.webrtc_listen, name="webrtc-listen"),
    path(
        "webrtc/listen/<str:username>/answer/", stream_views.webrtc_listen_answer, name="webrtc-listen-answer"
    ),
    path("webrtc/listen/<str:username>/leave/", stream_views.webrtc_listen_leave, name="webrtc-listen-leave"),
    # --- end live path ---
]
