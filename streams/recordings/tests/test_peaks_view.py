"""GET /api/recordings/<id>/peaks/: who may see a waveform, what it holds, and its cache file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from streams.models import Recording
from streams.recordings import peaks
from streams.recordings import service as recordings
from testing.http import assert_json_refusals
from users.models import User

Befriend = Callable[[User, User], None]


def make_recording(
    owner: User, samples: np.ndarray, *, finish: bool = True, raw: np.ndarray | None = None
) -> Recording:
    """A recording of `samples` (int16 mono; the original `raw` too if given) made as a live
    session makes one."""
    rec = recordings.create_recording(owner, denoise=True, atten_lim_db=100.0, record_raw=raw is not None)
    recorder = recordings.open_recorder(rec)
    recorder.write(samples, *(() if raw is None else (raw,)))
    stats = recorder.close()
    return recordings.finalize_recording(rec.pk, stats) if finish else rec


def loud_then_quiet(seconds: int = 2) -> np.ndarray:
    """Half the time at +/-0.5 full scale, then silence: a waveform one can recognise."""
    half = 48000 * seconds // 2
    return np.concatenate([np.tile(np.array([16384, -16384], np.int16), half // 2), np.zeros(half, np.int16)])


async def client_of(user: User | None) -> AsyncClient:
    client = AsyncClient()
    if user is not None:
        await client.aforce_login(user)
    return client


@pytest.fixture
def shared(alice: User, bob: User, befriend: Befriend, media_root: Path) -> Recording:
    """A finished 2 s recording of alice's; alice and bob are friends, carol is a stranger."""
    befriend(alice, bob)
    return make_recording(alice, loud_then_quiet())


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", ["alice", "bob"])
async def test_owner_and_friends_get_the_waveform(
    shared: Recording, alice: User, bob: User, media_root: Path, who: str
) -> None:
    client = await client_of({"alice": alice, "bob": bob}[who])

    response = await client.get(f"/api/recordings/{shared.pk}/peaks/")

    assert response.status_code == 200
    body = response.json()
    assert (body["buckets"], body["duration_s"], len(body["peaks"])) == (800, 2.0, 1600)
    assert body["peaks"][:800] == [-0.5, 0.5] * 400  # the loud first half
    assert body["peaks"][800:] == [0.0] * 800  # then silence
    assert response["Cache-Control"] == "private, no-cache"


@pytest.mark.django_db(transaction=True)
async def test_refusals_are_json_like_the_audio_files(
    shared: Recording, alice: User, carol: User, media_root: Path
) -> None:
    gone = await sync_to_async(make_recording)(alice, loud_then_quiet())
    (media_root / gone.audio_path).unlink()
    garbled = await sync_to_async(make_recording)(alice, loud_then_quiet())
    (media_root / garbled.audio_path).write_bytes(b"not a wav" * 100)
    stranger, owner, anonymous = await client_of(carol), await client_of(alice), await client_of(None)
    cases = [
        (anonymous, "get", f"/api/recordings/{shared.pk}/peaks/", 401),
        (stranger, "get", f"/api/recordings/{shared.pk}/peaks/", 404),  # existence not revealed
        (owner, "get", "/api/recordings/99999999999999999999999999/peaks/", 404),
        (owner, "get", "/api/recordings/0/peaks/", 404),
        (owner, "get", f"/api/recordings/{gone.pk}/peaks/", 404),
        (owner, "get", f"/api/recordings/{garbled.pk}/peaks/", 409),
        (owner, "post", f"/api/recordings/{shared.pk}/peaks/", 405),
    ]
    await assert_json_refusals(cases)
    for rec in (shared, garbled):  # nothing cached for a refusal
        assert not peaks.cache_path(media_root / rec.audio_path).exists()


@pytest.mark.django_db(transaction=True)
async def test_a_finished_recording_is_cached_next_to_its_file(
    shared: Recording, alice: User, media_root: Path
) -> None:
    client = await client_of(alice)
    first = (await client.get(f"/api/recordings/{shared.pk}/peaks/")).json()
    cache = peaks.cache_path(media_root / shared.audio_path)
    assert json.loads(cache.read_text()) == first

    cache.write_text(json.dumps({**first, "peaks": [0.25, 0.75]}))  # served from here from now on
    assert (await client.get(f"/api/recordings/{shared.pk}/peaks/")).json()["peaks"] == [0.25, 0.75]


@pytest.mark.django_db(transaction=True)
async def test_a_running_recording_gives_what_is_written_so_far_uncached(
    alice: User, media_root: Path
) -> None:
    running = await sync_to_async(make_recording)(alice, np.full(480, 16384, np.int16), finish=False)
    client = await client_of(alice)

    response = await client.get(f"/api/recordings/{running.pk}/peaks/")

    assert response.status_code == 200
    assert response.json() == {"peaks": [0.5] * 960, "buckets": 480, "duration_s": 0.01}
    assert not peaks.cache_path(media_root / running.audio_path).exists()


@pytest.mark.django_db
def test_deleting_a_recording_removes_its_cached_peaks(
    alice: User, media_root: Path, django_capture_on_commit_callbacks: Callable
) -> None:
    rec = make_recording(alice, loud_then_quiet())
    audio = media_root / rec.audio_path
    peaks.peaks_of(audio, cache=True)
    assert peaks.cache_path(audio).exists()

    with django_capture_on_commit_callbacks(execute=True):
        recordings.delete_recording(alice, rec.pk)

    assert [p for p in media_root.rglob("*") if p.is_file()] == []


@pytest.mark.django_db(transaction=True)
async def test_the_original_has_a_waveform_of_its_own(alice: User, media_root: Path) -> None:
    """The page draws the version being played: /raw/peaks/ is the original file's picture."""
    loud = loud_then_quiet()
    rec = await sync_to_async(make_recording)(alice, loud // 4, raw=loud)  # denoised: a quarter as loud
    client = await client_of(alice)
    denoised = (await client.get(f"/api/recordings/{rec.pk}/peaks/")).json()["peaks"]
    original = (await client.get(f"/api/recordings/{rec.pk}/raw/peaks/")).json()["peaks"]
    assert original[:2] == [-0.5, 0.5]
    assert denoised[:2] == [-0.125, 0.125]
    no_raw = await sync_to_async(make_recording)(alice, loud)
    response = await client.get(f"/api/recordings/{no_raw.pk}/raw/peaks/")
    assert (response.status_code, set(response.json())) == (404, {"error"})
