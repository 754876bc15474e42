"""A full disk on demand: a small tmpfs mounted inside the private mount namespace that
scripts/netns-run makes (nobody outside sees it; it vanishes with the namespace), and a filler
file that takes whatever space is left."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

_CHUNK = 64 * 1024


@contextlib.contextmanager
def small_disk(path: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of `size_bytes` (rounded up to whole pages) mounted at `path`."""
    if os.environ.get("RD_NETNS_INSIDE") != "1":
        raise RuntimeError(
            "a small disk is mounted in a private mount namespace: run inside scripts/netns-run"
        )
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0777", "tmpfs", str(path)], check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=False)


def fill(folder: Path, leave_bytes: int = 0) -> Path:
    """Write a filler file in `folder` until at most `leave_bytes` are free; returns it (delete
    it, or truncate it, to free the space again)."""
    filler = folder / "filler.bin"
    with open(filler, "ab", buffering=0) as fh:
        while True:
            free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
            if free <= leave_bytes:
                return filler
            try:
                fh.write(b"\0" * min(_CHUNK, max(free - leave_bytes, 1)))
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return filler
