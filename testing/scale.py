"""Several real Daphne processes on one database, one Redis and (optionally) one Janus, for the
scale-out tests and bench/scale_bench.py. Every process gets the same channel-layer and presence
prefixes (one deployment), its own port and log.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from testing.daphne import DaphneServer, app_env
from testing.janus import JanusServer
from testing.peers import HttpApi


@dataclass
class ScaleCluster:
    env: dict[str, str]
    servers: list[DaphneServer] = field(default_factory=list)
    janus: JanusServer | None = None  # the Janus the processes were told about

    def api(self, process: int, session_key: str) -> HttpApi:
        return HttpApi(self.servers[process].base_url, session_key)

    def cpu_seconds(self) -> float:
        return sum(
            server.cpu_seconds() for server in self.servers if server.proc and server.proc.poll() is None
        )

    def total(self, metric: str) -> float:
        return sum(s.metrics().get(metric, 0.0) for s in self.servers if s.proc and s.proc.poll() is None)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def start_cluster(
    folder: Path,
    database: str,
    redis_url: str,
    media_root: Path,
    *,
    processes: int = 2,
    janus: JanusServer | None = None,
    without_janus: int = 0,
    **settings: str,
) -> ScaleCluster:
    """`processes` Daphne processes (the last `without_janus` of them not told about Janus)."""
    env = app_env(database, media_root, REDIS_URL=redis_url, **{"LOG_LEVEL": "INFO", **settings})
    env["PRESENCE_REDIS_PREFIX"] = f"scale-{secrets.token_hex(4)}"
    cluster = ScaleCluster(env, janus=janus)
    for i in range(processes):
        own = {**env, **(janus.env() if janus is not None and i < processes - without_janus else {})}
        cluster.servers.append(DaphneServer(own, folder / f"daphne-{i}.log"))
    try:
        for server in cluster.servers:
            server.spawn()
        for server in cluster.servers:
            server.wait_ready()
    except BaseException:  # any failure, cancellation included: undo, then re-raise
        cluster.stop()
        raise
    return cluster
