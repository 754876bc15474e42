"""The recordings service: paths, finishing, crash recovery, visibility, deletion."""

from __future__ import annotations

import logging
import os
import re
import signal
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from django.conf import settings as django_settings
from django.db import transaction
from pytest_django.fixtures import Settings

from fc25_denoise.errors import Conflict, Forbidden, NotFound, Unavailable
from streams.models import Recording
from streams.recordings import service as recordings
from streams.recordings.wav_file import RecordingStats
from testing.samples import FRAME, ramp, stereo_frame
from users.models import User

pytestmark = pytest.mark.django_db


def record(rec: Recording, frames: int) -> RecordingStats:
    recorder = recordings.open_recorder(rec)
    for i in range(frames):
        recorder.write(stereo_frame(ramp(i)), stereo_frame(-ramp(i)))
    return recorder.close()


def test_create_recording_makes_row_paths_and_folder(alice: User, media_root: Path) -> None:
    rec = recordings.create_recording(alice, denoise=False, atten_lim_db=12.0, record_raw=True)
    assert re.fullmatch(rf"recordings/alice/\d{{8}}T\d{{6}}Z-{rec.pk}\.wav", rec.audio_path)
    assert rec.raw_path == rec.audio_path.removesuffix(".wav") + "-raw.wav"
    assert (media_root / "recordings" / "alice").is_dir()
    stored = Recording.objects.get(pk=rec.pk)
    assert (stored.denoise, stored.atten_lim_db, stored.finished, stored.audio_path) == (
        False,
        12.0,
        False,
        rec.audio_path,
    )
    no_raw = recordings.create_recording(alice, denoise=True, atten_lim_db=100.0, record_raw=False)
    assert no_raw.raw_path == ""


def test_a_username_of_dots_stays_inside_the_recordings_folder(
    make_user: Callable[[str], User], media_root: Path
) -> None:
    dots = make_user("..")
    rec = recordings.create_recording(dots, denoise=True, atten_lim_db=100.0, record_raw=False)
    assert rec.audio_path.startswith(f"recordings/user-{dots.pk}/")
    assert (media_root / "recordings" / f"user-{dots.pk}").is_dir()


def test_create_recording_without_storage_is_unavailable(
    alice: User, settings: Settings, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings.MEDIA_ROOT = blocker / "media"
    with pytest.raises(Unavailable):
        recordings.create_recording(alice, denoise=True, atten_lim_db=100.0, record_raw=True)
    assert not Recording.objects.exists()


def test_open_record_finalize(alice: User, media_root: Path) -> None:
    rec = recordings.create_recording(alice, denoise=True, atten_lim_db=100.0, record_raw=True)
    stats = record(rec, 50)
    done = recordings.finalize_recording(rec.pk, stats)
    assert done.finished
    assert not done.recovered
    assert done.duration_s == pytest.approx(1.0)
    assert done.size_bytes == 2 * (44 + 50 * FRAME * 2) == stats.size_bytes
    assert done.ended_at is not None
    assert done.ended_at >= done.started_at
    audio, _ = sf.read(media_root / rec.audio_path, dtype="int16")
    np.testing.assert_array_equal(audio, np.concatenate([ramp(i) for i in range(50)]))


def test_finalize_a_deleted_recording_is_not_found(db: None) -> None:
    with pytest.raises(NotFound):
        recordings.finalize_recording(123456, RecordingStats(1.0, 100))


def _crash_headers(path: Path, stray: bytes = b"") -> None:
    """What a crash before the next header update leaves: sizes behind the data, maybe half a sample."""
    body = bytearray(path.read_bytes())
    body[4:8] = struct.pack("<I", 36)
    body[40:44] = struct.pack("<I", 0)
    path.write_bytes(bytes(body) + stray)


def test_recover_unfinished_repairs_and_marks_rows(
    alice: User, media_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    crashed = recordings.create_recording(alice, denoise=True, atten_lim_db=100.0, record_raw=True)
    record(crashed, 25)
    _crash_headers(media_root / crashed.audio_path, stray=b"\x07")
    _crash_headers(media_root / crashed.raw_path)
    missing = recordings.create_recording(alice, denoise=True, atten_lim_db=100.0, record_raw=True)
    garbage = recordings.create_recording(alice, denoise=True, atten_lim_db=100.0, record_raw=False)
    (media_root / garbage.audio_path).write_bytes(b"this is not audio")
    done = recordings.create_recording(alice, denoise=True, atten_lim_db=100.0, record_raw=False)
    recordings.finalize_recording(done.pk, RecordingStats(duration_s=7.0, size_bytes=700))

    with caplog.at_level(logging.WARNING, logger="streams.recordings.service"):
        result = recordings.recover_unfinished()

    assert sorted(r.pk for r in result) == sorted([crashed.pk, missing.pk, garbage.pk])
    rows = {r.pk: r for r in Recording.objects.all()}
    assert all(rows[pk].finished and rows[pk].recovered for pk in (crashed.pk, missing.pk, garbage.pk))
    assert rows[crashed.pk].duration_s == pytest.approx(0.5)
    assert rows[crashed.pk].size_bytes == 2 * (44 + 25 * FRAME * 2)
    assert rows[crashed.pk].ended_at is not None
    assert (rows[missing.pk].duration_s, rows[missing.pk].size_bytes) == (0.0, 0)
    assert rows[garbage.pk].duration_s == 0.0
    assert (rows[done.pk].duration_s, rows[done.pk].recovered) == (7.0, False)
    assert "missing" in caplog.text
    assert "not a repairable WAV" in caplog.text
    audio, _ = sf.read(media_root / crashed.audio_path, dtype="int16")
    np.testing.assert_array_equal(audio, np.concatenate([ramp(i) for i in range(25)]))
    assert recordings.recover_unfinished() == []


def test_recovery_leaves_a_live_owners_recording_to_the_process_writing_it(
    alice: User, bob: User, media_root: Path
) -> None:
    live = recordings.create_recording(alice, denoise=True, atten_lim_db=100.0, record_raw=False)
    User.objects.filter(pk=alice.pk).update(is_streaming=True)  # live on another process
    crashed = recordings.create_recording(bob, denoise=True, atten_lim_db=100.0, record_raw=False)

    assert [r.pk for r in recordings.recover_unfinished(skip_live_owners=True)] == [crashed.pk]
    assert not Recording.objects.get(pk=live.pk).finished
    # Once presence finds alice's process dead, it finishes her recording by owner.
    assert recordings.recover_unfinished(owners=[bob.pk]) == []
    assert [r.pk for r in recordings.recover_unfinished(owners=[alice.pk])] == [live.pk]


# A separate process records 20 ms frames in real time and reports each one on stdout.
CRASHING_WRITER = """
import sys, time
from pathlib import Path
import av, numpy as np
from streams.recordings.recorder import Recorder

rec = Recorder(Path(sys.argv[1]), Path(sys.argv[2]))
start = time.monotonic()
for i in range(10**6):
    mono = (np.arange(i * 960, (i + 1) * 960) % 30000).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(np.repeat(mono, 2)[None, :], format="s16", layout="stereo")
    frame.sample_rate = 48000
    rec.write(frame, -mono)
    print(i + 1, flush=True)
    time.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))
"""


def _run_and_kill(audio: Path, raw: Path, frames: int) -> int:
    """Frames the writer had reported when it was SIGKILLed (at least `frames`)."""
    env = {**os.environ, "PYTHONPATH": str(django_settings.BASE_DIR)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING_WRITER, str(audio), str(raw)], stdout=subprocess.PIPE, env=env
    )
    assert proc.stdout is not None
    reported = 0
    try:
        while reported < frames:
            line = proc.stdout.readline()
            assert line, f"the writer exited early with {proc.poll()}"
            reported = int(line)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return reported


def test_sigkilled_recording_loses_at_most_about_a_second(alice: User, media_root: Path) -> None:
    rec = recordings.create_recording(alice, denoise=True, atten_lim_db=100.0, record_raw=True)
    reported = _run_and_kill(media_root / rec.audio_path, media_root / rec.raw_path, frames=125)

    [recovered] = recordings.recover_unfinished()

    written_s = reported * FRAME / 48000  # 2.5 s or a little more
    assert written_s - 1.2 <= recovered.duration_s <= written_s + 0.5
    row = Recording.objects.get(pk=rec.pk)
    assert row.finished
    assert row.recovered
    assert (
        row.size_bytes
        == (media_root / rec.audio_path).stat().st_size + (media_root / rec.raw_path).stat().st_size
    )
    expected = np.concatenate([ramp(i) for i in range(reported + 50)])
    audio, _ = sf.read(media_root / rec.audio_path, dtype="int16")
    raw, _ = sf.read(media_root / rec.raw_path, dtype="int16")
    assert len(audio) / 48000 == pytest.approx(recovered.duration_s)
    np.testing.assert_array_equal(audio, expected[: len(audio)])
    np.testing.assert_array_equal(raw, -expected[: len(raw)])
    assert len(raw) / 48000 >= written_s - 1.2


def test_visibility_self_and_friends_only(
    alice: User, bob: User, carol: User, befriend: Callable[[User, User], None], media_root: Path
) -> None:
    befriend(alice, bob)
    older = recordings.create_recording(alice, denoise=True, atten_lim_db=100.0, record_raw=False)
    newer = recordings.create_recording(alice, denoise=True, atten_lim_db=100.0, record_raw=False)
    recordings.create_recording(bob, denoise=True, atten_lim_db=100.0, record_raw=False)
    assert list(recordings.recordings_visible_to(alice, alice)) == [newer, older]
    assert list(recordings.recordings_visible_to(bob, alice)) == [newer, older]
    with pytest.raises(Forbidden):
        recordings.recordings_visible_to(carol, alice)
    with pytest.raises(NotFound):
        recordings.find_owner("nobody")
    assert recordings.find_owner("ALICE") == alice


def test_recording_file_hides_what_the_viewer_may_not_see(
    alice: User, bob: User, carol: User, befriend: Callable[[User, User], None], media_root: Path
) -> None:
    befriend(alice, bob)
    rec = recordings.create_recording(alice, denoise=True, atten_lim_db=100.0, record_raw=False)
    target = recordings.recording_file(bob, rec.pk, raw=False)
    assert target.path == media_root / rec.audio_path
    assert target.filename == f"alice-{Path(rec.audio_path).name}"
    for viewer, recording_id, raw in [(carol, rec.pk, False), (alice, rec.pk, True), (alice, 2**63, False)]:
        with pytest.raises(NotFound):
            recordings.recording_file(viewer, recording_id, raw=raw)


def test_delete_by_owner_removes_row_and_files(
    alice: User, media_root: Path, django_capture_on_commit_callbacks: Callable
) -> None:
    rec = recordings.create_recording(alice, denoise=True, atten_lim_db=100.0, record_raw=True)
    recordings.finalize_recording(rec.pk, record(rec, 5))
    with django_capture_on_commit_callbacks(execute=True):
        recordings.delete_recording(alice, rec.pk)
    assert not Recording.objects.filter(pk=rec.pk).exists()
    assert not (media_root / rec.audio_path).exists()
    assert not (media_root / rec.raw_path).exists()


def test_delete_refusals_change_nothing(alice: User, bob: User, media_root: Path) -> None:
    done = recordings.create_recording(alice, denoise=True, atten_lim_db=100.0, record_raw=False)
    recordings.finalize_recording(done.pk, record(done, 5))
    live = recordings.create_recording(alice, denoise=True, atten_lim_db=100.0, record_raw=False)
    for user, recording_id, error in [
        (bob, done.pk, NotFound),
        (alice, live.pk, Conflict),
        (alice, 2**63, NotFound),
        (alice, 0, NotFound),
        (alice, 987654, NotFound),
    ]:
        with pytest.raises(error):
            recordings.delete_recording(user, recording_id)
    assert Recording.objects.count() == 2
    assert (media_root / done.audio_path).exists()


def _finished(owner: User, *, raw: bool) -> Recording:
    rec = recordings.create_recording(owner, denoise=True, atten_lim_db=100.0, record_raw=raw)
    return recordings.finalize_recording(rec.pk, record(rec, 5))


def _files(rec: Recording, media_root: Path) -> list[Path]:
    return [media_root / p for p in (rec.audio_path, rec.raw_path) if p]


@pytest.mark.django_db(transaction=True)  # real commits: the files go only when the deletion commits
def test_deleting_a_user_removes_their_recordings_files_after_commit(
    alice: User, bob: User, media_root: Path
) -> None:
    with_raw, without_raw = _finished(alice, raw=True), _finished(alice, raw=False)
    gone, kept = _finished(alice, raw=True), _finished(bob, raw=True)
    (media_root / gone.raw_path).unlink()  # a missing file must not stop the rest
    with transaction.atomic():
        alice.delete()
        assert all(p.exists() for p in _files(with_raw, media_root) + _files(without_raw, media_root))
    assert list(Recording.objects.values_list("pk", flat=True)) == [kept.pk]
    for rec in (with_raw, without_raw, gone):
        assert not any(p.exists() for p in _files(rec, media_root))
    assert all(p.exists() for p in _files(kept, media_root))


def _delete_then_fail(user: User) -> None:
    with transaction.atomic():
        user.delete()
        raise RuntimeError("changed my mind")


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_user_deletion_keeps_the_files(alice: User, media_root: Path) -> None:
    rec = _finished(alice, raw=True)
    with pytest.raises(RuntimeError, match="changed my mind"):
        _delete_then_fail(alice)
    assert User.objects.filter(pk=rec.owner_id).exists()  # (the in-memory alice lost her pk)
    assert Recording.objects.filter(pk=rec.pk).exists()
    assert all(p.exists() for p in _files(rec, media_root))


@pytest.mark.django_db(transaction=True)
def test_deleting_a_user_while_live_removes_files_the_writer_still_holds(
    alice: User, media_root: Path
) -> None:
    rec = recordings.create_recording(alice, denoise=True, atten_lim_db=100.0, record_raw=True)
    recorder = recordings.open_recorder(rec)
    recorder.write(ramp(0))
    alice.delete()
    for i in range(1, 5):  # the stream goes on into the unlinked files, which nothing recreates
        recorder.write(ramp(i))
    stats = recorder.close()
    assert (recorder.error, recorder.frames_written, stats.size_bytes) == (None, 5 * FRAME, 0)
    assert not any(p.exists() for p in _files(rec, media_root))
    with pytest.raises(NotFound):
        recordings.finalize_recording(rec.pk, stats)
