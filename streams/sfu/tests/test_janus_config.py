"""deploy/janus/ rendered from the app's settings: the same secrets, STUN and TURN on both sides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deploy.render import PLACEHOLDER
from streams.sfu.janus_config import (
    FILES,
    TEMPLATES,
    JanusConfigError,
    JanusOptions,
    janus_values,
    write_janus_config,
)
from testing.processes import expected_password

BASE = {
    "janus_url": "http://10.0.0.5:8088/janus",
    "api_secret": "api-secret-1",
    "admin_key": "admin-key-1",
    "ice_servers": [{"urls": ["stun:stun.example.org:3479"]}],
}


def _rendered(tmp_path: Path, **kwargs: object) -> dict[str, str]:
    values = janus_values(**{**BASE, **kwargs})  # type: ignore[arg-type]
    write_janus_config(tmp_path, values)
    return {name: (tmp_path / name).read_text() for name in FILES}


def _setting(text: str, name: str) -> str | None:
    found = re.findall(rf'^\s*{name}\s*=\s*"?([^"\n]*)"?\s*$', text, re.MULTILINE)
    assert len(found) <= 1, f"{name} set twice"
    return found[0] if found else None


def test_secrets_address_and_port_ranges_reach_the_files(tmp_path: Path) -> None:
    files = _rendered(tmp_path, options=JanusOptions(media_ports="30000-30099", ingest_ports="31000-31099"))
    core, http, streaming = (files[name] for name in FILES)
    assert _setting(core, "api_secret") == "api-secret-1"
    assert _setting(streaming, "admin_key") == "admin-key-1"
    assert (_setting(http, "ip"), _setting(http, "port")) == ("10.0.0.5", "8088")
    assert _setting(http, "acl") == "10.0.0.5"
    assert _setting(http, "admin_http") == "false"
    assert _setting(core, "rtp_port_range") == "30000-30099"
    assert _setting(streaming, "rtp_port_range") == "31000-31099"
    assert (_setting(core, "stun_server"), _setting(core, "stun_port")) == ("stun.example.org", "3479")
    assert _setting(core, "turn_server") is None  # Janus relays only when asked to
    assert all(not PLACEHOLDER.search(text) for text in files.values())
    assert all((tmp_path / name).stat().st_mode & 0o077 == 0o040 for name in FILES)


def test_only_the_streaming_plugin_and_the_http_transport_stay_enabled(tmp_path: Path) -> None:
    core = _rendered(tmp_path)["janus.jcfg"]
    plugins_dir = Path("/usr/lib/x86_64-linux-gnu/janus/plugins")
    transports_dir = Path("/usr/lib/x86_64-linux-gnu/janus/transports")
    disabled = [set((_setting(section, "disable") or "").split(",")) for section in _sections(core)]
    plugins = {p.name for p in plugins_dir.glob("libjanus_*.so")}
    transports = {p.name for p in transports_dir.glob("libjanus_*.so")}
    assert plugins - disabled[0] == {"libjanus_streaming.so"}
    assert transports - disabled[1] == {"libjanus_http.so"}


def _sections(core: str) -> list[str]:
    return [
        re.search(rf"^{name}: {{(.*?)^}}", core, re.MULTILINE | re.DOTALL).group(1)
        for name in ("plugins", "transports")
    ]  # type: ignore[union-attr]


def test_turn_for_janus_uses_a_credential_from_the_apps_turn_secret(tmp_path: Path) -> None:
    core = _rendered(
        tmp_path,
        turn_urls=["turn:turn.example.org:3478?transport=udp"],
        turn_secret="shared-turn-secret",
        options=JanusOptions(turn=True, public_ip="203.0.113.7"),
    )["janus.jcfg"]
    user = _setting(core, "turn_user")
    assert user is not None
    assert user.endswith(":janus")
    assert _setting(core, "turn_pwd") == expected_password("shared-turn-secret", user)
    assert (_setting(core, "turn_server"), _setting(core, "turn_port"), _setting(core, "turn_type")) == (
        "turn.example.org",
        "3478",
        "udp",
    )
    assert _setting(core, "nat_1_1_mapping") == "203.0.113.7"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"janus_url": "https://10.0.0.5:8089/janus"}, "JANUS_URL"),
        ({"janus_url": "http://janus.internal:8088/janus"}, "private IP"),
        ({"janus_url": "http://10.0.0.5:8088/other"}, "JANUS_URL"),
        ({"api_secret": ""}, "JANUS_API_SECRET"),
        ({"admin_key": 'a"b'}, "quotes"),
        ({"options": JanusOptions(media_ports="20000")}, "port range"),
        ({"options": JanusOptions(ingest_ports="900-1000")}, "port range"),
        ({"options": JanusOptions(turn=True)}, "TURN_SECRET"),
    ],
)
def test_bad_values_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(JanusConfigError, match=message):
        janus_values(**{**BASE, **change})  # type: ignore[arg-type]


def test_the_templates_are_the_files_rendered() -> None:
    assert sorted(p.name for p in TEMPLATES.glob("*.jcfg")) == sorted(FILES)


def test_the_command_renders_from_the_apps_settings(tmp_path: Path, settings: object) -> None:
    from io import StringIO

    from django.core.management import call_command

    settings.JANUS_URL = "http://10.0.0.9:8188/janus"  # type: ignore[attr-defined]
    settings.JANUS_API_SECRET = "from-env"  # type: ignore[attr-defined]
    settings.JANUS_ADMIN_KEY = "key-from-env"  # type: ignore[attr-defined]
    settings.ICE_SERVERS = [{"urls": "stun:stun.example.net"}]  # type: ignore[attr-defined]
    out = StringIO()
    call_command("janus_config", str(tmp_path), "--acl", "10.0.0.11,10.0.0.12", stdout=out)
    core = (tmp_path / "janus.jcfg").read_text()
    http = (tmp_path / "janus.transport.http.jcfg").read_text()
    assert _setting(core, "api_secret") == "from-env"
    assert (_setting(core, "stun_server"), _setting(core, "stun_port")) == ("stun.example.net", "3478")
    assert _setting(core, "configs_folder") == str(tmp_path)
    assert (_setting(http, "ip"), _setting(http, "port"), _setting(http, "acl")) == (
        "10.0.0.9",
        "8188",
        "10.0.0.11,10.0.0.12",
    )
    assert out.getvalue().count("wrote ") == 3


def test_the_command_refuses_without_janus_settings(tmp_path: Path, settings: object) -> None:
    from django.core.management import CommandError, call_command

    settings.JANUS_URL = ""  # type: ignore[attr-defined]
    with pytest.raises(CommandError, match="JANUS_URL"):
        call_command("janus_config", str(tmp_path))
