"""`python manage.py janus_config FOLDER [options]`: deploy/janus/ rendered from this app's settings.

JANUS_URL, JANUS_API_SECRET, JANUS_ADMIN_KEY, ICE_SERVERS (STUN) and, with --turn, TURN_URLS /
TURN_SECRET come from the environment the app runs with, so both sides agree; the options are
what only the Janus host knows (see docs/deploy.md, "Scaling out").
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from streams.sfu.janus_config import JanusConfigError, JanusOptions, janus_values, write_janus_config


class Command(BaseCommand):
    help = "Write janus.jcfg, janus.transport.http.jcfg and janus.plugin.streaming.jcfg into FOLDER."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        defaults = JanusOptions()
        parser.add_argument("folder", type=Path, help="where to write them (Debian: /etc/janus)")
        parser.add_argument("--media-ports", default=defaults.media_ports, help="WebRTC UDP range (public)")
        parser.add_argument(
            "--ingest-ports", default=defaults.ingest_ports, help="RTP from the app (private)"
        )
        parser.add_argument("--acl", default="", help="app host address prefixes, comma-separated")
        parser.add_argument("--public-ip", default="", help="this host's public address behind a 1:1 NAT")
        parser.add_argument("--ice-enforce", default="", help="interfaces/addresses for ICE candidates")
        parser.add_argument("--turn", action="store_true", help="relay Janus itself through TURN_URLS")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.JANUS_URL:
            raise CommandError("Set JANUS_URL (and JANUS_API_SECRET, JANUS_ADMIN_KEY) first.")
        folder: Path = options["folder"]
        try:
            values = janus_values(
                janus_url=settings.JANUS_URL,
                api_secret=settings.JANUS_API_SECRET,
                admin_key=settings.JANUS_ADMIN_KEY,
                ice_servers=settings.ICE_SERVERS,
                turn_urls=settings.TURN_URLS,
                turn_secret=settings.TURN_SECRET,
                configs_folder=str(folder),
                options=JanusOptions(
                    media_ports=options["media_ports"],
                    ingest_ports=options["ingest_ports"],
                    acl=[a.strip() for a in options["acl"].split(",") if a.strip()],
                    public_ip=options["public_ip"],
                    ice_enforce=options["ice_enforce"],
                    turn=options["turn"],
                ),
            )
            written = write_janus_config(folder, values)
        except (JanusConfigError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        for path in written:
            self.stdout.write(f"wrote {path}")
