"""Janus's configuration from the app's own settings: deploy/janus/ rendered by deploy/render.py.

The same values reach both sides: the HTTP address, api_secret and admin_key the app uses
(JANUS_URL, JANUS_API_SECRET, JANUS_ADMIN_KEY), the STUN server the app's peers use
(ICE_SERVERS), and, only when asked for, a TURN credential for Janus itself made from
TURN_SECRET like the app's own (fc25_denoise.ice).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from deploy.render import render
from fc25_denoise.ice import turn_credential

TEMPLATES = Path(__file__).resolve().parents[2] / "deploy" / "janus"
FILES = ("janus.jcfg", "janus.transport.http.jcfg", "janus.plugin.streaming.jcfg")
JANUS_TURN_IDENTITY = "janus"


class JanusConfigError(ValueError):
    pass


@dataclass(frozen=True)
class JanusOptions:
    """What only the Janus host needs to know (the app's settings give the rest)."""

    media_ports: str = "20000-20999"  # WebRTC to browsers: open to the internet
    ingest_ports: str = "21000-21999"  # RTP from the app: private network only
    acl: Sequence[str] = ()  # address prefixes of the app hosts; default: the API's own address
    public_ip: str = ""  # nat_1_1_mapping behind a 1:1 NAT
    ice_enforce: str = ""  # interfaces / addresses for ICE candidates (all when empty)
    turn: bool = False  # Janus itself behind a restrictive firewall: relay through TURN
    turn_ttl_s: int = 365 * 86400
    session_timeout_s: int = 60
    debug_level: int = 4
    extra_nat: Mapping[str, str] = field(default_factory=dict)


def port_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        first, last = int(low), int(high)
    except ValueError as exc:
        raise JanusConfigError(f"a port range looks like 20000-20999, got {text!r}") from exc
    if not sep or not 1024 <= first <= last <= 65535:
        raise JanusConfigError(f"a port range looks like 20000-20999, got {text!r}")
    return first, last


def api_address(url: str) -> tuple[str, int]:
    """The private address and port Janus's HTTP transport binds to, from JANUS_URL."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.path.rstrip("/") != "/janus":
        raise JanusConfigError(f"JANUS_URL must look like http://10.0.0.5:8088/janus, got {url!r}")
    try:
        ipaddress.ip_address(parts.hostname)
    except ValueError as exc:
        raise JanusConfigError(f"JANUS_URL must name Janus by its private IP address, got {url!r}") from exc
    return parts.hostname, parts.port or 80


def _stun(ice_servers: Sequence[Mapping[str, object]]) -> dict[str, str]:
    for server in ice_servers:
        urls = server.get("urls")
        for url in [urls] if isinstance(urls, str) else list(urls or []):  # type: ignore[call-overload]
            if isinstance(url, str) and url.startswith("stun:"):
                host, _, port = url[len("stun:") :].split("?")[0].rpartition(":")
                if not host:
                    host, port = port, "3478"
                return {"stun_server": host.strip("[]"), "stun_port": port}
    return {}


def _turn(turn_urls: Sequence[str], secret: str, ttl_s: int) -> dict[str, str]:
    if not secret or not turn_urls:
        raise JanusConfigError("TURN for Janus needs TURN_SECRET and TURN_URLS")
    url = turn_urls[0]
    scheme, _, rest = url.partition(":")
    address, _, query = rest.partition("?")
    host, _, port = address.rpartition(":")
    transport = "tls" if scheme == "turns" else ("tcp" if "transport=tcp" in query else "udp")
    cred = turn_credential(secret, JANUS_TURN_IDENTITY, ttl_s)
    return {
        "turn_server": host.strip("[]"),
        "turn_port": port or ("5349" if scheme == "turns" else "3478"),
        "turn_type": transport,
        "turn_user": cred.username,
        "turn_pwd": cred.credential,
    }


def janus_values(
    *,
    janus_url: str,
    api_secret: str,
    admin_key: str,
    ice_servers: Sequence[Mapping[str, object]],
    turn_urls: Sequence[str] = (),
    turn_secret: str = "",
    configs_folder: str = "/etc/janus",
    options: JanusOptions | None = None,
) -> dict[str, str]:
    """The placeholder values of deploy/janus/*.jcfg."""
    options = options or JanusOptions()
    if not api_secret or not admin_key:
        raise JanusConfigError("JANUS_API_SECRET and JANUS_ADMIN_KEY must both be set")
    for secret in (api_secret, admin_key):
        if '"' in secret or "\\" in secret or "\n" in secret:
            raise JanusConfigError("the Janus secrets must not contain quotes, backslashes or newlines")
    ip, port = api_address(janus_url)
    port_range(options.media_ports)
    port_range(options.ingest_ports)
    nat: dict[str, str] = _stun(ice_servers)
    if options.public_ip:
        nat["nat_1_1_mapping"] = options.public_ip
    if options.ice_enforce:
        nat["ice_enforce_list"] = options.ice_enforce
    if options.turn:
        nat.update(_turn(turn_urls, turn_secret, options.turn_ttl_s))
    nat.update(options.extra_nat)
    return {
        "CONFIGS_FOLDER": configs_folder,
        "DEBUG_LEVEL": str(options.debug_level),
        "API_SECRET": api_secret,
        "SESSION_TIMEOUT": str(options.session_timeout_s),
        "MEDIA_PORT_RANGE": options.media_ports,
        "NAT_SETTINGS": "\n".join(f'\t{name} = "{value}"' for name, value in nat.items()),
        "HTTP_IP": ip,
        "HTTP_PORT": str(port),
        "HTTP_ACL": ",".join(options.acl or [ip]),
        "ADMIN_KEY": admin_key,
        "INGEST_PORT_RANGE": options.ingest_ports,
    }


def write_janus_config(folder: Path, values: Mapping[str, str]) -> list[Path]:
    """Render the three templates into `folder` (mode 0640: they hold the secrets)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in FILES:
        path = folder / name
        path.write_text(render((TEMPLATES / name).read_text(), dict(values)))
        path.chmod(0o640)
        written.append(path)
    return written
