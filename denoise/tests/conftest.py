"""Fixtures of the denoise tests: the shared test audio."""

from __future__ import annotations

import pytest

from testing.frames import Int16, read_int16


@pytest.fixture(scope="session")
def noisy() -> Int16:
    return read_int16("noisy_snr0.wav")


@pytest.fixture(scope="session")
def clean() -> Int16:
    return read_int16("clean_freesound_33711.wav")
