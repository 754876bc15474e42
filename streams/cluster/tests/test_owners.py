"""Owners on a real Redis: one record per live stream, guarded by its session id."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from streams.cluster.owners import Owner, Owners


@pytest.fixture
async def owners(redis_url: str) -> AsyncIterator[Owners]:
    client = aioredis.Redis.from_url(redis_url)
    yield Owners(client, f"test-owners-{uuid.uuid4().hex[:8]}")
    await client.aclose()


A = Owner(channel="rd-control.a", session_id="s1", process="proc-a")


async def test_a_claimed_stream_names_its_owner_and_mountpoint(owners: Owners) -> None:
    assert await owners.get(7) is None
    await owners.claim(7, A)
    assert await owners.get(7) == A
    assert await owners.set_mountpoint(7, "s1", 99)
    assert (await owners.get(7)).mountpoint == 99  # type: ignore[union-attr]
    assert await owners.set_mountpoint(7, "s1", None)
    assert (await owners.get(7)).mountpoint is None  # type: ignore[union-attr]


async def test_an_ended_session_never_touches_the_next_one(owners: Owners) -> None:
    await owners.claim(7, A)
    await owners.claim(7, Owner(channel="rd-control.b", session_id="s2", process="proc-b", mountpoint=5))
    assert not await owners.set_mountpoint(7, "s1", 1)
    assert not await owners.release(7, "s1")
    assert (await owners.get(7)).session_id == "s2"  # type: ignore[union-attr]
    assert await owners.release(7, "s2")
    assert await owners.get(7) is None


async def test_the_reaper_takes_only_a_dead_processs_record(owners: Owners) -> None:
    await owners.claim(7, A)
    assert await owners.take(7, "proc-b") is None
    assert await owners.get(7) == A
    assert await owners.take(7, "proc-a") == A
    assert await owners.get(7) is None
    assert await owners.take(7, "proc-a") is None
