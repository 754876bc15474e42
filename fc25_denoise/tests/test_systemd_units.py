"""deploy/systemd/: the units systemd itself accepts (systemd-analyze verify), the template's
instances included."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from testing.processes import BASE_DIR, DEPLOY

UNITS = ["realtime-denoise.service", "realtime-denoise-tls.service", "realtime-denoise@.service"]


def _verify(folder: Path, unit: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(folder / unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_accepts_the_unit(tmp_path: Path, unit: str) -> None:
    # The units name the deployed paths; point them at this checkout so the binary exists.
    for name in UNITS:
        text = (DEPLOY / "systemd" / name).read_text().replace("/opt/realtime-denoise", str(BASE_DIR))
        (tmp_path / name).write_text(text)
    instance = "realtime-denoise@8001.service" if unit.endswith("@.service") else unit
    if instance != unit:
        shutil.copy(tmp_path / unit, tmp_path / instance)
    result = _verify(tmp_path, instance)
    problems = [line for line in result.stderr.splitlines() if instance.split(".")[0] in line]
    assert problems == [], result.stderr


def test_the_template_runs_one_daphne_per_instance_port() -> None:
    text = (DEPLOY / "systemd" / "realtime-denoise@.service").read_text()
    assert "--port %i" in text
    assert "--bind ${DAPHNE_BIND}" in text
    assert text.index("Environment=DAPHNE_BIND=127.0.0.1") < text.index("EnvironmentFile=")
    assert "realtime-denoise@.service" in (BASE_DIR / "docs" / "deploy.md").read_text()


def _exposure(folder: Path, unit: str) -> float:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(folder / unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    overall = [line for line in result.stdout.splitlines() if "Overall exposure level" in line]
    assert overall, result.stdout + result.stderr
    return float(overall[0].split(":")[1].split()[0])


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_rates_the_unit_at_most_3(tmp_path: Path, unit: str) -> None:
    """docs/deploy.md quotes these figures; 10 is fully exposed, below 3 is "OK"."""
    instance = "realtime-denoise@8001.service" if unit.endswith("@.service") else unit
    shutil.copy(DEPLOY / "systemd" / unit, tmp_path / instance)
    assert _exposure(tmp_path, instance) <= 3.0


@pytest.mark.parametrize("unit", UNITS)
def test_only_the_units_behind_nginx_trust_forwarded_headers(unit: str) -> None:
    text = (DEPLOY / "systemd" / unit).read_text()
    behind_nginx = unit != "realtime-denoise-tls.service"
    assert ("--proxy-headers \\\n" in text) == behind_nginx
    assert ("Environment=BEHIND_PROXY=1" in text) == behind_nginx
    assert ("UnsetEnvironment=BEHIND_PROXY" in text) == (not behind_nginx)
    assert ("CapabilityBoundingSet=\n" in text) == behind_nginx  # no capability without port 443
