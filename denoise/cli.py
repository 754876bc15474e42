"""Offline denoising of a file: `python -m denoise IN OUT [--atten-lim DB] [--no-denoise]`.

The output is a WAV file at the input's rate and channel count, time-aligned with the input
(the stream delay is removed) and of the same length. It is written to a temporary file next to
OUT and renamed into place, so a failure never leaves a partial OUT behind.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from tqdm import tqdm

from denoise.audio import AudioFile, default_layout
from denoise.engine import ATTEN_LIM_MAX_DB, Engine, validate_atten_lim
from denoise.exceptions import DenoiseError, OutputError
from denoise.stream import Denoiser

EXIT_BAD_INPUT = 2
FRAME_MS = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments; shared with the Django `manage.py denoise` wrapper."""
    parser.add_argument("input", type=Path, help="audio file to denoise (any format FFmpeg reads)")
    parser.add_argument("output", type=Path, help="WAV file to write")
    parser.add_argument(
        "--atten-lim",
        type=float,
        default=ATTEN_LIM_MAX_DB,
        metavar="DB",
        help="most noise attenuation in dB, 0-100 (default 100: as much as the model can)",
    )
    parser.add_argument("--no-denoise", action="store_true", help="pass the audio through unchanged")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m denoise", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        denoise_file(args.input, args.output, atten_lim_db=args.atten_lim, enabled=not args.no_denoise)
    except DenoiseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def denoise_file(
    src: Path,
    dst: Path,
    *,
    atten_lim_db: float = ATTEN_LIM_MAX_DB,
    enabled: bool = True,
    progress: bool | None = None,
    engine: Engine | None = None,
) -> None:
    """Denoise `src` into the WAV `dst`. Progress shows on a terminal unless `progress` says.

    Raises InputError, OutputError or InvalidSettingError (all DenoiseError) on bad arguments.
    """
    validate_atten_lim(atten_lim_db)
    _check_output(src, dst)
    source = AudioFile(src)
    try:
        with (
            _replacing(dst) as tmp,
            Denoiser(atten_lim_db=atten_lim_db, enabled=enabled, engine=engine) as den,
        ):
            _convert(source, den, tmp, progress)
    finally:
        source.close()


def _check_output(src: Path, dst: Path) -> None:
    if dst.is_dir():
        raise OutputError(f"output is a directory: {dst}")
    if dst.resolve() == src.resolve() or (dst.exists() and src.exists() and dst.samefile(src)):
        raise OutputError(f"output would overwrite the input: {dst}")


@contextlib.contextmanager
def _replacing(dst: Path) -> Iterator[Path]:
    """A temporary path beside `dst`, renamed onto `dst` on success and removed otherwise."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {dst}: {exc.strerror or exc}") from exc
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        tmp.chmod(0o666 & ~_umask())  # mkstemp makes it private; give OUT the usual mode
        os.replace(tmp, dst)
    except OSError as exc:
        raise OutputError(f"cannot write {dst}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it on Python 3.11
    os.umask(mask)
    return mask


def _convert(source: AudioFile, den: Denoiser, tmp: Path, progress: bool | None) -> None:
    rate, channels = source.sample_rate, source.channels
    size = rate * FRAME_MS // 1000 if rate * FRAME_MS % 1000 == 0 else 1024
    subtype = "PCM_16" if source.format == "s16" else "FLOAT"
    skip: int | None = None  # the delay, known once the first frame has fixed the stream format
    written = 0
    frames = itertools.chain(source.frames(size), _silence(size, source.format, rate, channels))
    bar = tqdm(total=source.estimated_samples, unit="sample", unit_scale=True, disable=_quiet(progress))
    with (
        bar,
        sf.SoundFile(tmp, "w", samplerate=rate, channels=channels, subtype=subtype, format="WAV") as out,
    ):
        for frame in frames:
            samples = den.process(frame).to_ndarray().reshape(-1, channels)
            if skip is None:
                skip = den.delay_samples
            drop = min(skip, len(samples))
            skip -= drop
            keep = samples[drop : drop + source.samples - written]
            out.write(keep)
            written += len(keep)
            bar.update(len(keep))
            # Output lags input by the delay, so this holds only once the last real frame is in.
            if written >= source.samples:
                break


def _silence(size: int, fmt: str, rate: int, channels: int) -> Iterator[av.AudioFrame]:
    """Endless silent frames: they push the delayed tail of the input out."""
    zeros = np.zeros((1, size * channels), dtype=np.int16 if fmt == "s16" else np.float32)
    while True:
        frame = av.AudioFrame.from_ndarray(zeros, format=fmt, layout=default_layout(channels))
        frame.sample_rate = rate
        yield frame


def _quiet(progress: bool | None) -> bool | None:
    # tqdm's `disable=None` already means "only on a terminal".
    return None if progress is None else not progress
