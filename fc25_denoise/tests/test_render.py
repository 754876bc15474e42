"""deploy/render.py: fills @NAME@ placeholders and refuses to leave one unfilled."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deploy.render import RenderError, parse_assignments, render
from testing.processes import BASE_DIR, DEPLOY

TEMPLATES = {
    "nginx/realtime-denoise.conf": {
        "SERVER_NAME",
        "HTTP_PORT",
        "HTTPS_PORT",
        "UPSTREAM_SERVERS",
        "CERT",
        "KEY",
    },
    "coturn/turnserver.conf": {
        "TURN_PORT",
        "REALM",
        "TURN_SECRET",
        "RELAY_MIN_PORT",
        "RELAY_MAX_PORT",
        "APP_SERVER_IP",
    },
}


def test_render_fills_every_placeholder_and_leaves_dollars_alone() -> None:
    text = "server @UPSTREAM@; return 301 https://$host$request_uri; # @UPSTREAM@"
    assert render(text, {"UPSTREAM": "127.0.0.1:8000"}) == (
        "server 127.0.0.1:8000; return 301 https://$host$request_uri; # 127.0.0.1:8000"
    )


def test_render_refuses_missing_values() -> None:
    with pytest.raises(RenderError, match="no value for CERT, KEY"):
        render("@KEY@ @CERT@ @KEY@", {})


@pytest.mark.parametrize("arg", ["NOEQUALS", "lower=x", "=x", "A-B=x"])
def test_bad_assignments_are_refused(arg: str) -> None:
    with pytest.raises(RenderError, match="expected NAME=VALUE"):
        parse_assignments([arg])


@pytest.mark.parametrize(("template", "names"), TEMPLATES.items())
def test_shipped_templates_use_exactly_the_documented_names(template: str, names: set[str]) -> None:
    values = {name: f"<{name}>" for name in names}
    rendered = render((DEPLOY / template).read_text(), values)
    assert "@" not in rendered.replace("@example", "")
    for name in names:
        assert f"<{name}>" in rendered
    assert f"deploy/{template}" in (BASE_DIR / "docs" / "deploy.md").read_text()


def test_command_line_renders_to_stdout_and_fails_clearly() -> None:
    script = str(DEPLOY / "render.py")
    template = str(DEPLOY / "nginx" / "realtime-denoise.conf")
    partial = subprocess.run(
        [sys.executable, script, template, "SERVER_NAME=talk.example.org"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert partial.returncode == 1
    assert partial.stderr.strip().endswith("no value for CERT, HTTPS_PORT, HTTP_PORT, KEY, UPSTREAM_SERVERS")
    values = [f"{name}=x" for name in TEMPLATES["nginx/realtime-denoise.conf"]]
    full = subprocess.run(
        [sys.executable, script, template, *values], capture_output=True, text=True, timeout=30, check=False
    )
    assert full.returncode == 0, full.stderr
    assert "server_name x;" in full.stdout
