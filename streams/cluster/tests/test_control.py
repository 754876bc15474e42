"""ControlBus between two "processes" (two channel layers) on a real Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from channels_redis.core import RedisChannelLayer

from fc25_denoise.errors import Conflict, NotFound, Unavailable
from streams.cluster.control import ControlBus, channel_name


@pytest.fixture
async def make_bus(redis_url: str) -> AsyncIterator[Callable[..., ControlBus]]:
    """make_bus(handler) -> a started bus on its own layer, as another process would have."""
    prefix = f"test-control-{uuid.uuid4().hex[:8]}"
    made: list[ControlBus] = []

    def make(handler: Any) -> ControlBus:
        layer = RedisChannelLayer(hosts=[{"address": redis_url, "socket_timeout": None}], prefix=prefix)
        made.append(ControlBus(layer, channel_name(f"proc-{len(made)}-{uuid.uuid4().hex[:6]}"), handler))
        return made[-1]

    yield make
    for bus in made:
        await bus.aclose()
        await bus.layer.flush()


async def _owner(action: str, args: dict[str, Any]) -> dict[str, Any]:
    if action == "settings":
        return {"denoise": args["denoise"], "atten_lim_db": 40.0}
    if action == "stop":
        raise Conflict("Nothing to stop here.")
    raise NotFound(f"No such action {action!r}.")


async def _nobody(action: str, args: dict[str, Any]) -> dict[str, Any]:
    raise AssertionError("the caller's own handler must not run")


async def test_a_request_runs_on_the_owner_and_brings_back_its_answer(
    make_bus: Callable[..., ControlBus],
) -> None:
    owner, caller = make_bus(_owner), make_bus(_nobody)
    await owner.start()
    await caller.start()
    reply = await caller.call(owner.channel, "settings", {"denoise": False}, within=5)
    assert (reply.status, reply.result()) == (200, {"denoise": False, "atten_lim_db": 40.0})


async def test_the_owners_refusal_comes_back_with_its_status_and_words(
    make_bus: Callable[..., ControlBus],
) -> None:
    owner, caller = make_bus(_owner), make_bus(_nobody)
    await owner.start()
    await caller.start()
    reply = await caller.call(owner.channel, "stop", {}, within=5)
    assert (reply.status, reply.body) == (409, {"error": "Nothing to stop here."})
    with pytest.raises(Conflict, match="Nothing to stop here"):
        reply.result()


async def test_an_owner_that_does_not_answer_is_unavailable_within_the_timeout(
    make_bus: Callable[..., ControlBus],
) -> None:
    dead, caller = make_bus(_owner), make_bus(_nobody)  # `dead` never starts serving
    await caller.start()
    started = time.monotonic()
    with pytest.raises(Unavailable, match="did not answer"):
        await caller.call(dead.channel, "settings", {"denoise": True}, within=0.5)
    assert time.monotonic() - started < 1.5


async def test_concurrent_requests_each_get_their_own_answer(make_bus: Callable[..., ControlBus]) -> None:
    owner, caller = make_bus(_owner), make_bus(_nobody)
    await owner.start()
    await caller.start()
    replies = await asyncio.gather(
        *(caller.call(owner.channel, "settings", {"denoise": i % 2 == 0}, within=5) for i in range(20))
    )
    assert [r.body["denoise"] for r in replies] == [i % 2 == 0 for i in range(20)]


async def test_a_request_to_this_process_runs_here_without_the_layer(
    make_bus: Callable[..., ControlBus],
) -> None:
    bus = make_bus(_owner)  # not even serving: the layer is not used
    reply = await bus.call(bus.channel, "settings", {"denoise": True}, within=1)
    assert reply.body["denoise"] is True


def test_channel_names_are_valid_for_the_layer() -> None:
    layer = RedisChannelLayer()
    name = channel_name("host.example-123-ab12cd/x y" + "z" * 200)
    assert layer.require_valid_channel_name(name)
