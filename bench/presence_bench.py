"""Presence under load: WebSocket clients on two Daphne processes sharing one Redis.

    scripts/netns-run .venv/bin/python -m bench.presence_bench [--quick]

Each user has ~20 friends and one presence socket on one of the two processes. Users go
offline (close the socket) and online (open one) at random, at rising rates; for every change
the bench times each online friend's socket receiving the `presence` event. It reports that
latency, server memory per open socket, and the change rate the pair sustains before p99
passes 1 s. The database is a throw-away one (PostgreSQL when DATABASE_URL says so, else a
SQLite file); Redis is REDIS_URL or a private redis-server (testing/cluster.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.exceptions import InvalidHandshake

from testing.cluster import WsClient, cluster_env, own_redis
from testing.daphne import DaphneServer, database_url


def build_people(count: int, friends_each: int) -> list[tuple[str, str]]:
    """`count` users with ~`friends_each` friends; returns (username, Cookie header) per user."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from users.models import Friendship, User

    User.objects.bulk_create(User(username=f"u{i:04d}", password="!") for i in range(count))  # noqa: S106
    users = list(User.objects.order_by("pk"))
    pairs = set()
    for user in users:
        for other in random.sample(users, friends_each // 2 + 1):
            if other.pk != user.pk:
                pairs.add((min(user.pk, other.pk), max(user.pk, other.pk)))
    Friendship.objects.bulk_create(Friendship(user_a_id=a, user_b_id=b) for a, b in pairs)
    people = []
    for user in users:
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        people.append((user.username, f"{settings.SESSION_COOKIE_NAME}={session.session_key}"))
    return people


class Load:
    """The clients, and the timing of each change until friends hear of it."""

    def __init__(self, people: list[tuple[str, str]], ports: list[int]) -> None:
        self.people, self.ports = people, ports
        self.sockets: dict[str, WsClient] = {}
        self.changed_at: dict[tuple[str, bool], float] = {}
        self.last_change: dict[str, float] = {}
        self.samples: dict[bool, list[float]] = {True: [], False: []}  # by is_online
        self.failures = 0
        self.tasks: set[asyncio.Task[None]] = set()

    def heard(self, message: dict[str, Any]) -> None:
        if message.get("type") == "presence":
            sent = self.changed_at.get((message["username"], message["is_online"]))
            if sent is not None:
                self.samples[message["is_online"]].append(time.monotonic() - sent)

    async def open(self, index: int, attempts: int = 1) -> None:
        name, cookie = self.people[index]
        for attempt in range(attempts):
            try:
                client = await WsClient.connect(self.ports[index % len(self.ports)], "/ws/presence/", cookie)
            except (OSError, InvalidHandshake, TimeoutError):
                if attempt == attempts - 1:
                    self.failures += 1
                    return
            else:
                client.on_message = self.heard
                self.sockets[name] = client
                return

    async def toggle(self, index: int) -> None:
        name = self.people[index][0]
        now = time.monotonic()
        self.last_change[name] = now
        client = self.sockets.pop(name, None)
        self.changed_at[(name, client is None)] = now
        await (self.open(index) if client is None else client.close())

    def toggle_soon(self, cooldown_s: float) -> None:
        """Bring a random offline user online or take an online one offline (even odds), among
        users who did not change in the last `cooldown_s` (so each event matches its change)."""
        now = time.monotonic()
        want_online = random.random() < 0.5
        for _ in range(50):
            index = random.randrange(len(self.people))
            name = self.people[index][0]
            if (name not in self.sockets) == want_online and now - self.last_change.get(name, 0) > cooldown_s:
                task = asyncio.create_task(self.toggle(index))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
                return

    async def run_rate(self, rate: float, seconds: float) -> dict[str, float]:
        self.samples, self.failures = {True: [], False: []}, 0
        start, changes, lag = time.monotonic(), 0, 0.0
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(elapsed * rate) + 1 - changes
            for _ in range(due):
                self.toggle_soon(cooldown_s=1.0)
            changes += due
            tick = time.monotonic()
            await asyncio.sleep(0.01)
            lag = max(lag, time.monotonic() - tick - 0.01)  # how late the bench's own loop runs
        await asyncio.sleep(2.0)  # stragglers
        both = self.samples[True] + self.samples[False]
        return (
            summarize(both)
            | {f"online_{k}": v for k, v in summarize(self.samples[True]).items()}
            | {f"offline_{k}": v for k, v in summarize(self.samples[False]).items()}
            | {"rate": rate, "changes": changes, "failed": self.failures, "bench_lag_ms": lag * 1000}
        )


def summarize(samples: list[float]) -> dict[str, float]:
    if len(samples) < 2:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "events": len(samples)}
    q = statistics.quantiles(samples, n=100)
    return {"p50": q[49] * 1000, "p95": q[94] * 1000, "p99": q[98] * 1000, "events": len(samples)}


async def measure(
    people: list[tuple[str, str]], servers: list[DaphneServer], rates: list[float], seconds: float
) -> dict:
    load = Load(people, [s.port for s in servers])
    before = sum(s.rss_bytes() for s in servers)
    for start in range(0, len(people), 10):  # small batches: a handshake waits at most 5 s
        await asyncio.gather(*(load.open(i, attempts=3) for i in range(start, min(start + 10, len(people)))))
    if load.failures:
        raise RuntimeError(f"{load.failures} of {len(people)} clients could not connect")
    await asyncio.sleep(3)  # the connection burst's events settle
    per_socket = (sum(s.rss_bytes() for s in servers) - before) / len(people)
    steps = []
    for rate in rates:
        steps.append(await load.run_rate(rate, seconds))
        print(f"  {rate:>5.0f}/s  p50 {steps[-1]['p50']:.1f} ms  p99 {steps[-1]['p99']:.1f} ms", flush=True)
        if steps[-1]["p99"] > 1000:
            break
    await asyncio.gather(*load.tasks, return_exceptions=True)
    await asyncio.gather(*(client.close() for client in load.sockets.values()), return_exceptions=True)
    return {"per_socket": per_socket, "steps": steps}


def report(result: dict, clients: int, friends: int, db: str, quick: bool) -> str:
    steps = result["steps"]
    first = steps[0]
    sustained = [s["rate"] for s in steps if s["p99"] <= 1000]
    rows = "\n".join(
        f"| {s['rate']:.0f} | {s['changes']} | {s['failed']} | {s['events']} | {s['p50']:.1f} "
        f"| {s['p95']:.1f} | {s['p99']:.1f} | {s['online_p99']:.1f} | {s['offline_p99']:.1f} "
        f"| {s['bench_lag_ms']:.0f} |"
        for s in steps
    )
    top = f"{max(sustained):.0f} changes/s" if sustained else "below the lowest rate tried"
    if sustained and len(sustained) == len(steps):
        top += " (the highest rate tried)"
    return f"""
{clients} clients ({"--quick" if quick else "full run"}), ~{friends} friends each, 2 Daphne processes,
one Redis, {db} database, PRESENCE_GRACE_S=0 (offline is announced at once). A change is one
user closing its socket (offline) or opening a new one (online: the time includes the new
socket's handshake and login); latency runs from that action to a friend's socket receiving
the `presence` event (all clients live in the bench process, one clock). Load average of the
shared machine when the run ended: {os.getloadavg()[0]:.1f}.

- Event latency at {first["rate"]:.0f} changes/s: p50 {first["p50"]:.1f} ms, p95 {first["p95"]:.1f} ms,
  p99 {first["p99"]:.1f} ms (goal p99 <= 100 ms); offline events alone p99 {first["offline_p99"]:.1f} ms.
- Server memory per open socket: {result["per_socket"] / 1024:.1f} KiB (RSS of both processes).
- Sustained rate (p99 <= 1 s): {top}.

| changes/s | changes | failed | events | p50 ms | p95 ms | p99 ms | online p99 | offline p99 | bench lag |
|---|---|---|---|---|---|---|---|---|---|
{rows}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 clients, two short steps")
    args = parser.parse_args()
    clients, friends = (100, 20) if args.quick else (500, 20)
    full_rates = [10.0, 25.0, 35.0, 50.0, 75.0, 100.0, 200.0]
    rates, seconds = ([10.0, 50.0], 3.0) if args.quick else (full_rates, 8.0)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fc25_denoise.settings")
    import django

    django.setup()
    from django.db import connection

    from bench.report import write_section

    test_settings = connection.settings_dict.setdefault("TEST", {})
    if connection.vendor == "postgresql":
        test_settings["NAME"] = f"presence_bench_{os.getpid()}"
    else:
        test_settings["NAME"] = str(Path(tempfile.gettempdir()) / f"presence-bench-{os.getpid()}.sqlite3")
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    servers: list[DaphneServer] = []
    try:
        random.seed(6)
        people = build_people(clients, friends)
        with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
            redis_url = os.environ.get("REDIS_URL") or stack.enter_context(own_redis(Path(folder)))
            env = cluster_env(
                redis_url, database_url(connection.settings_dict), PRESENCE_GRACE_S="0", LOG_LEVEL="INFO"
            )
            servers = [DaphneServer(env, Path(folder) / f"daphne{i}.log") for i in range(2)]
            for server in servers:
                server.spawn()
            for server in servers:
                server.wait_ready()
            print(f"presence bench: {clients} clients on ports {[s.port for s in servers]}", flush=True)
            result = asyncio.run(measure(people, servers, rates, seconds))
            for server in servers:
                server.stop()
    finally:
        for server in servers:
            server.stop()
        connection.creation.destroy_test_db(old_name, verbosity=0)
    body = report(result, clients, friends, connection.vendor, args.quick)
    print(body)
    write_section("presence", "Presence fan-out (bench/presence_bench.py)", body)


if __name__ == "__main__":
    main()
