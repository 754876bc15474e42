"""The recordings' disk fills up mid-stream (MEDIA_ROOT on a small tmpfs, a real Daphne, a real
aiortc broadcaster): she is told within a second and stays live, the log says it once, the
row's figures are the file's, and a start the full disk refuses leaves no row."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import soundfile as sf

from testing import peers
from testing.disk import fill, small_disk
from testing.stack import AppStack

pytestmark = pytest.mark.webrtc


@pytest.fixture
def stack(make_stack: Callable[..., AppStack]) -> Iterator[AppStack]:
    app = make_stack(["alice", "bob"], [("alice", "bob")], start=False)
    with small_disk(app.media, 8 * 1024 * 1024):
        app.daphne.start()
        yield app
        app.daphne.stop()  # before the disk goes


async def test_a_full_disk_stops_the_recording_not_the_stream(
    stack: AppStack, audio_file: Any, client_pcs: list
) -> None:
    alice = stack.api("alice")
    alice_ws = await stack.socket("alice")
    assert (await alice_ws.next())["type"] == "snapshot"
    track = peers.ArrayTrack(peers.read_wav(audio_file("noisy_snr0")), loop=True)
    await peers.go_live_over_http(alice, track, client_pcs)
    assert (await alice_ws.next())["type"] == "streaming_status"
    await peers.wait_for(lambda: track.sent_s >= 1.5, timeout=20)

    await asyncio.to_thread(fill, stack.media)
    full = time.monotonic()
    told = await alice_ws.next(within=5)
    assert time.monotonic() - full < 1.0
    assert told == {
        "type": "recording",
        "username": "alice",
        "state": "stopped",
        "reason": "storage_full",
        "message": "Recording stopped: storage full; you are still live.",
    }
    sent = track.sent_s
    await peers.wait_for(lambda: track.sent_s >= sent + 1.0, timeout=10)
    status, stream = await alice.acall("GET", "/api/stream/status/alice/")
    assert (status, stream["is_streaming"]) == (200, True)  # still live
    assert (await alice.acall("POST", "/api/stream/stop/"))[0] == 200

    status, rows = await alice.acall("GET", "/api/recordings/alice/")
    assert status == 200
    assert len(rows) == 1
    files = sorted((stack.media / "recordings" / "alice").glob("*.wav"))
    assert rows[0]["size_bytes"] == sum(f.stat().st_size for f in files)  # the files' real size
    audio = next(f for f in files if not f.name.endswith("-raw.wav"))
    assert abs(rows[0]["duration_s"] - sf.info(audio).duration) < 1e-6  # what the file holds
    assert 1.0 < rows[0]["duration_s"] < sent + 0.5
    assert stack.daphne.log().count("stopped after") == 1  # one line for the change

    status, body = await alice.acall("POST", "/api/stream/start/", {})
    assert (status, set(body)) == (503, {"error"})
    assert "storage" in body["error"]
    assert len((await alice.acall("GET", "/api/recordings/alice/"))[1]) == 1  # no row for it
    await alice_ws.close()
