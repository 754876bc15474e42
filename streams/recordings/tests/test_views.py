"""The recordings HTTP API: list, file download with Range, delete, and refusals."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from asgiref.sync import sync_to_async
from django.http import HttpResponseBase
from django.test import AsyncClient, Client

from streams.models import Recording
from streams.recordings import service as recordings
from streams.recordings.recorder import Recorder
from testing.http import assert_json_refusals
from testing.samples import FRAME, FakeClock, ramp
from users.models import User

Befriend = Callable[[User, User], None]
ClientFor = Callable[[User], Client]


def make_recording(owner: User, *, frames: int = 10, raw: bool = True, finish: bool = True) -> Recording:
    rec = recordings.create_recording(owner, denoise=True, atten_lim_db=100.0, record_raw=raw)
    recorder = recordings.open_recorder(rec)
    for i in range(frames):
        recorder.write(ramp(i), -ramp(i))
    stats = recorder.close()
    return recordings.finalize_recording(rec.pk, stats) if finish else rec


def snapshot(media_root: Path) -> tuple[list[Any], list[Path]]:
    """Every recording row and file, to prove a refused request changed nothing."""
    rows = list(Recording.objects.order_by("pk").values_list())
    return rows, sorted(p for p in media_root.rglob("*") if p.is_file())


# ---- list -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_owner_sees_own_recordings_newest_first_running_one_included(
    alice: User, media_root: Path, client_for: ClientFor
) -> None:
    older = make_recording(alice, frames=50)
    newer = make_recording(alice, raw=False)
    running = make_recording(alice, finish=False)

    response = client_for(alice).get("/api/recordings/alice/")

    assert response.status_code == 200
    body = response.json()
    assert [item["id"] for item in body] == [running.pk, newer.pk, older.pk]
    audio_bytes = (media_root / older.audio_path).stat().st_size
    assert body[2] == {
        "id": older.pk,
        "title": "",
        "started_at": older.started_at.isoformat().replace("+00:00", "Z"),
        "duration_s": 1.0,
        "size_bytes": older.size_bytes,
        "audio_bytes": audio_bytes,
        "raw_bytes": (media_root / older.raw_path).stat().st_size,
        "denoise": True,
        "atten_lim_db": 100.0,
        "finished": True,
        "recovered": False,
        "audio_url": f"/api/recordings/{older.pk}/audio/",
        "raw_url": f"/api/recordings/{older.pk}/raw/",
        "peaks_url": f"/api/recordings/{older.pk}/peaks/",
        "raw_peaks_url": f"/api/recordings/{older.pk}/raw/peaks/",
    }
    # each download's own size; size_bytes is both files together
    assert body[2]["audio_bytes"] + body[2]["raw_bytes"] == older.size_bytes
    assert body[1]["raw_url"] is None
    assert body[1]["raw_peaks_url"] is None
    assert body[1]["raw_bytes"] == 0
    assert body[0]["finished"] is False


@pytest.mark.django_db
def test_friend_sees_the_list(
    alice: User, bob: User, befriend: Befriend, media_root: Path, client_for: ClientFor
) -> None:
    befriend(alice, bob)
    rec = make_recording(alice)
    make_recording(bob)
    response = client_for(bob).get("/api/recordings/Alice/")
    assert response.status_code == 200
    assert [item["id"] for item in response.json()] == [rec.pk]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "path", "status"),
    [
        ("carol", "/api/recordings/alice/", 403),
        (None, "/api/recordings/alice/", 401),
        ("carol", "/api/recordings/nobody/", 404),
        ("carol", "/api/recordings/%00/", 404),
        ("carol", "/api/recordings/" + "x" * 300 + "/", 404),
    ],
)
def test_list_refusals(
    alice: User, carol: User, media_root: Path, client_for: ClientFor, who: str | None, path: str, status: int
) -> None:
    make_recording(alice)
    client = client_for(carol) if who else Client()
    response = client.get(path)
    assert response.status_code == status
    assert set(response.json()) == {"error"}


# ---- files ----------------------------------------------------------------------------------


async def body_of(response: HttpResponseBase) -> bytes:
    assert response.streaming  # type: ignore[attr-defined]
    return b"".join([chunk async for chunk in response.streaming_content])  # type: ignore[attr-defined]


@pytest.fixture
def shared(alice: User, bob: User, befriend: Befriend, media_root: Path) -> Recording:
    """A finished recording of alice's (with raw; 3 s, more than one read chunk), alice and bob friends."""
    befriend(alice, bob)
    return make_recording(alice, frames=150)


@pytest.mark.django_db(transaction=True)
async def test_full_download(shared: Recording, bob: User, media_root: Path) -> None:
    client = AsyncClient()
    await client.aforce_login(bob)
    content = (media_root / shared.audio_path).read_bytes()

    response = await client.get(f"/api/recordings/{shared.pk}/audio/")

    assert response.status_code == 200
    assert await body_of(response) == content
    assert response["Content-Type"] == "audio/wav"
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Length"] == str(len(content))
    assert response["Content-Disposition"] == f'inline; filename="alice-{Path(shared.audio_path).name}"'
    assert "Content-Range" not in response

    raw = await client.get(f"/api/recordings/{shared.pk}/raw/")
    assert raw.status_code == 200
    assert await body_of(raw) == (media_root / shared.raw_path).read_bytes()
    assert raw["Content-Disposition"].endswith('-raw.wav"')

    head = await client.head(f"/api/recordings/{shared.pk}/audio/")
    assert head.status_code == 200
    assert head["Content-Length"] == str(len(content))
    assert head.content == b""


@pytest.mark.django_db(transaction=True)
async def test_a_running_recording_can_be_downloaded(alice: User, media_root: Path) -> None:
    rec = await sync_to_async(make_recording)(alice, raw=False, finish=False)
    clock = FakeClock()
    recorder = Recorder(media_root / rec.audio_path, None, clock=clock)  # what the live session does
    try:
        for i in range(5):
            recorder.write(ramp(i))
        assert recorder.wait_written(5 * FRAME, timeout=5)
        clock.now = 1.0
        recorder.write(ramp(5))
        assert recorder.wait_synced(6 * FRAME, timeout=5)
        client = AsyncClient()
        await client.aforce_login(alice)
        response = await client.get(f"/api/recordings/{rec.pk}/audio/")
        assert response.status_code == 200
        samples, rate = sf.read(io.BytesIO(await body_of(response)), dtype="int16")
        assert rate == 48000
        np.testing.assert_array_equal(samples, np.concatenate([ramp(i) for i in range(6)]))
    finally:
        await recorder.aclose()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=44-44", 44, 44),
        ("bytes=262000-262300", 262000, 262300),  # across a read chunk boundary
        ("bytes=1000-", 1000, None),
        ("bytes=-10", -10, None),
        ("bytes=100-999999999999999999999", 100, None),
        ("BYTES=-999999", 0, None),
    ],
)
async def test_range_requests_get_exact_bytes(
    shared: Recording, alice: User, media_root: Path, header: str, first: int, last: int | None
) -> None:
    client = AsyncClient()
    await client.aforce_login(alice)
    content = (media_root / shared.audio_path).read_bytes()
    size = len(content)
    start = first % size if first < 0 else first
    end = size - 1 if last is None else last

    response = await client.get(f"/api/recordings/{shared.pk}/audio/", headers={"Range": header})

    assert response.status_code == 206
    assert await body_of(response) == content[start : end + 1]
    assert response["Content-Range"] == f"bytes {start}-{end}/{size}"
    assert response["Content-Length"] == str(end - start + 1)
    assert response["Accept-Ranges"] == "bytes"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Range": "bytes=999999-"}, 416),
        ({"Range": "bytes=-0"}, 416),
        # Ignored, so the whole file: bad syntax, reversed, several ranges, other units, If-Range.
        ({"Range": "bytes=abc"}, 200),
        ({"Range": "bytes=5-2"}, 200),
        ({"Range": "bytes=0-1,5-6"}, 200),
        ({"Range": "bytes=-"}, 200),
        ({"Range": "bytes=" + "9" * 5000 + "-"}, 200),
        ({"Range": "items=0-5"}, 200),
        ({"Range": "bytes=0-5", "If-Range": '"abc"'}, 200),
    ],
)
async def test_unusable_ranges(
    shared: Recording, alice: User, media_root: Path, headers: dict, status: int
) -> None:
    client = AsyncClient()
    await client.aforce_login(alice)
    content = (media_root / shared.audio_path).read_bytes()

    response = await client.get(f"/api/recordings/{shared.pk}/audio/", headers=headers)

    assert response.status_code == status
    if status == 416:
        assert response["Content-Range"] == f"bytes */{len(content)}"
        assert set(response.json()) == {"error"}
    else:
        assert await body_of(response) == content


@pytest.mark.django_db(transaction=True)
async def test_file_refusals(shared: Recording, alice: User, carol: User, media_root: Path) -> None:
    no_raw = await _arecord(alice)
    gone = await _arecord(alice)
    (media_root / gone.audio_path).unlink()
    stranger, owner, anonymous = AsyncClient(), AsyncClient(), AsyncClient()
    await stranger.aforce_login(carol)
    await owner.aforce_login(alice)
    cases = [
        (anonymous, "get", f"/api/recordings/{shared.pk}/audio/", 401),
        (stranger, "get", f"/api/recordings/{shared.pk}/audio/", 404),
        (stranger, "get", f"/api/recordings/{shared.pk}/raw/", 404),
        (owner, "get", f"/api/recordings/{no_raw.pk}/raw/", 404),
        (owner, "get", f"/api/recordings/{gone.pk}/audio/", 404),
        (owner, "get", "/api/recordings/99999999999999999999999999/audio/", 404),
        (owner, "get", "/api/recordings/0/audio/", 404),
        (owner, "post", f"/api/recordings/{shared.pk}/audio/", 405),
        (owner, "delete", f"/api/recordings/{shared.pk}/audio/", 405),
    ]
    await assert_json_refusals(cases)


async def _arecord(owner: User) -> Recording:
    return await sync_to_async(make_recording)(owner, raw=False)


# ---- delete ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_owner_deletes_row_and_files(
    alice: User, media_root: Path, client_for: ClientFor, django_capture_on_commit_callbacks: Callable
) -> None:
    rec = make_recording(alice)
    keep = make_recording(alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(alice).delete(f"/api/recordings/{rec.pk}/")
    assert response.status_code == 204
    assert list(Recording.objects.values_list("pk", flat=True)) == [keep.pk]
    assert not (media_root / rec.audio_path).exists()
    assert not (media_root / rec.raw_path).exists()
    assert (media_root / keep.audio_path).exists()


@pytest.mark.django_db
def test_delete_needs_the_csrf_token(alice: User, media_root: Path) -> None:
    rec = make_recording(alice)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    before = snapshot(media_root)
    response = client.delete(f"/api/recordings/{rec.pk}/")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]
    assert snapshot(media_root) == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "method", "path", "status"),
    [
        ("carol", "delete", "/api/recordings/{own}/", 404),  # someone else's: not revealed
        ("bob", "delete", "/api/recordings/{own}/", 404),  # friends may listen, not delete
        (None, "delete", "/api/recordings/{own}/", 401),
        ("alice", "delete", "/api/recordings/{live}/", 409),
        ("alice", "delete", "/api/recordings/abc/", 404),
        ("alice", "delete", "/api/recordings/-1/", 404),
        ("alice", "delete", "/api/recordings/99999999999999999999999/", 404),
        ("alice", "delete", "/api/recordings/\uff11\uff12/", 404),  # fullwidth digits
        ("alice", "post", "/api/recordings/alice/", 405),
        ("alice", "put", "/api/recordings/{own}/", 405),
        ("alice", "get", "/api/recordings/alice/?limit=0", 400),
        ("alice", "get", "/api/recordings/alice/?limit=101", 400),
        ("alice", "get", "/api/recordings/alice/?limit=x", 400),
        ("alice", "get", "/api/recordings/alice/?limit=5&offset=-1", 400),
        ("alice", "get", "/api/recordings/alice/?limit=5&min_s=nan", 400),
        ("alice", "get", "/api/recordings/alice/?limit=5&min_s=-3", 400),
        ("alice", "get", "/api/recordings/{own}/x/", 404),
    ],
)
def test_refused_requests_change_nothing(
    alice: User,
    bob: User,
    carol: User,
    befriend: Befriend,
    media_root: Path,
    client_for: ClientFor,
    who: str | None,
    method: str,
    path: str,
    status: int,
) -> None:
    befriend(alice, bob)
    ids = {"own": make_recording(alice).pk, "live": make_recording(alice, finish=False).pk}
    client = client_for({"alice": alice, "bob": bob, "carol": carol}[who]) if who else Client()
    before = snapshot(media_root)
    response = getattr(client, method)(path.format(**ids))
    assert response.status_code == status
    assert set(response.json()) == {"error"}
    assert snapshot(media_root) == before


# ---- paging, short ones left out, rename -------------------------------------------------------


@pytest.mark.django_db
def test_a_page_leaves_out_short_ones_but_counts_them(
    alice: User, media_root: Path, client_for: ClientFor
) -> None:
    long_ones = [make_recording(alice, frames=200) for _ in range(3)]  # 4 s each
    make_recording(alice, frames=50)  # 1 s: an accidental start
    running = make_recording(alice, finish=False)  # 0 s so far, never left out
    client = client_for(alice)

    first = client.get("/api/recordings/alice/?limit=2&min_s=3").json()
    assert [r["id"] for r in first["recordings"]] == [running.pk, long_ones[2].pk]
    assert (first["total"], first["short"], first["next_offset"]) == (4, 1, 2)
    rest = client.get("/api/recordings/alice/?limit=2&offset=2&min_s=3").json()
    assert [r["id"] for r in rest["recordings"]] == [long_ones[1].pk, long_ones[0].pk]
    assert rest["next_offset"] is None

    everything = client.get("/api/recordings/alice/?limit=100").json()  # min_s defaults to 0
    assert (everything["total"], everything["short"], len(everything["recordings"])) == (5, 0, 5)


@pytest.mark.django_db
def test_owner_renames_and_resets_a_title(alice: User, media_root: Path, client_for: ClientFor) -> None:
    rec = make_recording(alice)
    client = client_for(alice)
    response = client.patch(
        f"/api/recordings/{rec.pk}/", {"title": "  Band\\npractice  "}, content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json()["title"] == "Band\\npractice"
    response = client.patch(
        f"/api/recordings/{rec.pk}/", {"title": "Band\npractice\t take 2"}, content_type="application/json"
    )
    assert response.json()["title"] == "Band practice take 2"  # one line
    assert client.get("/api/recordings/alice/").json()[0]["title"] == "Band practice take 2"
    assert (
        client.patch(f"/api/recordings/{rec.pk}/", {"title": ""}, content_type="application/json").json()[
            "title"
        ]
        == ""
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "key", "body", "status"),
    [
        ("bob", "{own}", {"title": "mine now"}, 404),  # friends may listen, not rename
        ("carol", "{own}", {"title": "x"}, 404),
        (None, "{own}", {"title": "x"}, 401),
        ("alice", "{own}", {"title": "x" * 101}, 400),
        ("alice", "{own}", {"title": 5}, 400),
        ("alice", "{own}", {"title": "x", "owner": "bob"}, 400),
        ("alice", "{own}", {}, 400),
        ("alice", "{own}", ["title"], 400),
        ("alice", "alice", {"title": "x"}, 404),
        ("alice", "99999999999999999999999", {"title": "x"}, 404),
    ],
)
def test_refused_renames_change_nothing(
    alice: User,
    bob: User,
    carol: User,
    befriend: Befriend,
    media_root: Path,
    client_for: ClientFor,
    who: str | None,
    key: str,
    body: object,
    status: int,
) -> None:
    befriend(alice, bob)
    own = make_recording(alice).pk
    client = client_for({"alice": alice, "bob": bob, "carol": carol}[who]) if who else Client()
    before = snapshot(media_root)
    response = client.patch(f"/api/recordings/{key.format(own=own)}/", body, content_type="application/json")
    assert response.status_code == status
    assert set(response.json()) == {"error"}
    assert snapshot(media_root) == before


@pytest.mark.django_db
def test_rename_with_a_broken_body_is_refused(alice: User, media_root: Path, client_for: ClientFor) -> None:
    rec = make_recording(alice)
    response = client_for(alice).patch(
        f"/api/recordings/{rec.pk}/", b"{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert set(response.json()) == {"error"}
