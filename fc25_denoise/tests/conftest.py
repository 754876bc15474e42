"""Fixtures of the deploy tests: coturn from the shipped template, a production-mode install,
and the live-path fixtures of testing/fixtures.py (users, started Services, test audio, peers)."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator

import pytest
from aioice.ice import get_host_addresses

from testing import prod_server
from testing.processes import (
    START_TIMEOUT_S,
    TURN_SECRET,
    Coturn,
    coturn_config,
    die_with_parent,
    free_port,
    stun_answers,
    wait_until,
)
from testing.prod_server import Production


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coturn]:
    """coturn from the shipped template; the relay may reach this namespace's own addresses."""
    peers = get_host_addresses(use_ipv4=True, use_ipv6=False)
    assert peers, "no non-loopback IPv4 address: run the tests inside scripts/netns-run"
    folder = tmp_path_factory.mktemp("coturn")
    port = free_port(socket.SOCK_DGRAM, also=socket.SOCK_STREAM)
    conf = folder / "turnserver.conf"
    conf.write_text(coturn_config(port, peers, folder))
    server = subprocess.Popen(
        ["turnserver", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    try:
        wait_until(
            lambda: server.poll() is not None or stun_answers((peers[0], port)), START_TIMEOUT_S, "coturn"
        )
        assert server.poll() is None, f"turnserver exited with {server.returncode}"
        yield Coturn(host=peers[0], port=port, secret=TURN_SECRET, log=folder / "turn.log")
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="session")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Production]:
    """A DEBUG=0 install (scratch PostgreSQL database, redis-server, collected static files, a
    `make cert` certificate); every server a test starts on it is stopped at the end."""
    folder = tmp_path_factory.mktemp("production")
    with prod_server.scratch_database() as database, prod_server.scratch_redis(folder) as redis:
        prod = prod_server.prepare(folder, database, redis)
        try:
            yield prod
        finally:
            prod.stop_all()
