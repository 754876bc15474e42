"""`python manage.py denoise IN OUT [--atten-lim DB] [--no-denoise]`: a thin wrapper over denoise.cli."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from denoise.cli import EXIT_BAD_INPUT, add_arguments, denoise_file
from denoise.exceptions import DenoiseError


class Command(BaseCommand):
    help = "Denoise an audio file into a time-aligned WAV of the same length (DeepFilterNet3)."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            denoise_file(
                options["input"],
                options["output"],
                atten_lim_db=options["atten_lim"],
                enabled=not options["no_denoise"],
            )
        except DenoiseError as exc:
            raise CommandError(str(exc), returncode=EXIT_BAD_INPUT) from exc
