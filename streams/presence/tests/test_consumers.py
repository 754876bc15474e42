"""ws/presence/ and ws/stream/<username>/ through the real ASGI stack (origin check, session auth)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from testing.fixtures import MakeUser, WsHarness
from users import friendships
from users.models import FriendRequest, User

pytestmark = pytest.mark.django_db(transaction=True)
STARTED = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
Befriend = Callable[[User, User], None]
MakeHarness = Callable[..., WsHarness]
in_thread = database_sync_to_async


async def expect(comm: WebsocketCommunicator, **fields: Any) -> dict[str, Any]:
    """The socket's next message, which must carry these fields."""
    message = await comm.receive_json_from(timeout=3)
    assert {key: message.get(key) for key in fields} == fields, message
    return message


async def expect_close(comm: WebsocketCommunicator, code: int) -> None:
    assert await comm.receive_output(timeout=3) == {"type": "websocket.close", "code": code}


async def db_user(user: User) -> User:
    return await User.objects.aget(pk=user.pk)


# -- handshake ------------------------------------------------------------------------------


async def test_anonymous_socket_is_closed_with_4401_before_any_data(make_harness: MakeHarness) -> None:
    harness = make_harness()
    comm = await harness.open(None)
    connected, _ = await comm.connect()
    assert connected
    await expect_close(comm, 4401)


@pytest.mark.parametrize("path", ["/ws/presence/", "/ws/stream/alice/"])
async def test_cross_origin_socket_is_refused(make_harness: MakeHarness, alice: User, path: str) -> None:
    comm = await make_harness().open(alice, path, origin="http://evil.example")
    connected, _ = await comm.connect()
    assert not connected


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:3000",
        "https://localhost",
        "ftp://localhost",
        "http://localhost.evil.example",
        "null",
    ],
)
async def test_an_origin_differing_in_scheme_port_or_host_is_refused(
    make_harness: MakeHarness, alice: User, origin: str
) -> None:
    comm = await make_harness().open(alice, origin=origin)
    connected, _ = await comm.connect()
    assert not connected


@pytest.mark.parametrize("path", ["/ws/x/", "/ws/", "/ws/presence", "/ws/stream/", "/nothing/at/all"])
@pytest.mark.parametrize("signed_in", [False, True])
async def test_an_unknown_path_closes_with_4404_and_one_info_line(
    make_harness: MakeHarness, alice: User, caplog: pytest.LogCaptureFixture, path: str, signed_in: bool
) -> None:
    comm = await make_harness().open(alice if signed_in else None, path)
    with caplog.at_level("INFO"):
        connected, _ = await comm.connect(timeout=5)
        assert connected
        await expect_close(comm, 4404)
    lines = [
        r for r in caplog.records if r.levelno >= logging.INFO and r.name.startswith(("streams", "django"))
    ]
    assert [(r.levelname, "unknown path" in r.getMessage()) for r in lines] == [("INFO", True)]


async def test_a_user_holds_at_most_max_presence_sockets(
    make_harness: MakeHarness, alice: User, bob: User, settings: Any
) -> None:
    settings.MAX_PRESENCE_SOCKETS = 3
    harness = make_harness()
    kept = [(await harness.join(alice))[0] for _ in range(3)]
    extra = await harness.open(alice)
    connected, _ = await extra.connect(timeout=5)
    assert connected
    await expect_close(extra, 4429)
    await harness.leave(extra)  # the browser's side of the close
    assert await harness.presence.socket_count(alice.pk) == 3  # the refused one no longer counts
    await harness.join(bob)  # another user is not affected
    await harness.leave(kept[0])
    _, snapshot = await harness.join(alice)  # a freed place can be taken again
    assert "friends" in snapshot


async def test_snapshot_lists_friends_state_and_pending_requests(
    make_harness: MakeHarness, make_user: MakeUser, befriend: Befriend, alice: User, bob: User, carol: User
) -> None:
    dave, erin, frank = [await in_thread(make_user)(name) for name in ("dave", "erin", "frank")]
    for a, b in [(alice, bob), (alice, carol), (dave, bob)]:
        await in_thread(befriend)(a, b)
    incoming = await FriendRequest.objects.acreate(from_user=erin, to_user=alice)
    outgoing = await FriendRequest.objects.acreate(from_user=alice, to_user=frank)
    await FriendRequest.objects.acreate(from_user=dave, to_user=alice, status="rejected")
    harness = make_harness(grace_s=60)
    await harness.join(bob)
    await harness.join(dave)
    await harness.presence.stream_started(carol.pk, started_at=STARTED, denoise=True, atten_lim_db=30.0)
    await harness.presence.listeners_changed(carol.pk, 2)

    _, snapshot = await harness.join(alice)

    assert snapshot == {
        "type": "snapshot",
        "friends": [
            {
                "id": bob.pk,
                "username": "bob",
                "is_online": True,
                "is_streaming": False,
                "started_at": None,
                "listeners": 0,
            },
            {
                "id": carol.pk,
                "username": "carol",
                "is_online": False,
                "is_streaming": True,
                "started_at": "2026-01-02T03:04:05Z",
                "listeners": 2,
            },
        ],
        "requests": {
            "incoming": [
                {
                    "id": incoming.pk,
                    "username": "erin",
                    "created_at": incoming.created_at.isoformat().replace("+00:00", "Z"),
                }
            ],
            "outgoing": [
                {
                    "id": outgoing.pk,
                    "username": "frank",
                    "created_at": outgoing.created_at.isoformat().replace("+00:00", "Z"),
                }
            ],
        },
    }


# -- events ---------------------------------------------------------------------------------


async def test_presence_and_stream_events_reach_friends_only(
    make_harness: MakeHarness, make_user: MakeUser, befriend: Befriend, alice: User, bob: User
) -> None:
    dave = await in_thread(make_user)("dave")
    await in_thread(befriend)(alice, bob)
    harness = make_harness(grace_s=0.05)
    alice_ws, _ = await harness.join(alice)
    dave_ws, _ = await harness.join(dave)

    bob_ws, _ = await harness.join(bob)
    await expect(alice_ws, type="presence", username="bob", is_online=True)
    assert (await db_user(bob)).is_online

    await harness.presence.stream_started(bob.pk, started_at=STARTED, denoise=False, atten_lim_db=12.0)
    expected = {"type": "streaming_status", "username": "bob", "is_streaming": True}
    await expect(alice_ws, **expected, started_at="2026-01-02T03:04:05Z", denoise=False)
    await expect(bob_ws, **expected)  # the broadcaster's other tabs learn it too

    await harness.presence.listeners_changed(bob.pk, 3)
    await expect(bob_ws, type="listeners", username="bob", count=3)

    await harness.presence.stream_ended(bob.pk)
    await expect(alice_ws, type="streaming_status", username="bob", is_streaming=False, started_at=None)
    await expect(bob_ws, type="streaming_status", is_streaming=False)

    await harness.leave(bob_ws)
    await expect(alice_ws, type="presence", username="bob", is_online=False)
    assert not (await db_user(bob)).is_online
    await dave_ws.receive_nothing(timeout=0.2)  # dave is nobody's friend: he heard none of it


async def test_friend_graph_events_reach_both_parties(
    make_harness: MakeHarness, make_user: MakeUser, alice: User, bob: User
) -> None:
    erin, frank = await in_thread(make_user)("erin"), await in_thread(make_user)("frank")
    harness = make_harness(grace_s=60)
    alice_ws, _ = await harness.join(alice)
    erin_ws, _ = await harness.join(erin)
    frank_ws, _ = await harness.join(frank)

    request = await in_thread(friendships.send_request)(erin, "alice")
    await expect(alice_ws, type="friend_request", id=request.pk, username="erin")

    await in_thread(friendships.accept)(alice, request.pk)
    await expect(
        alice_ws, type="friend_added", id=erin.pk, username="erin", is_online=True, is_streaming=False
    )
    await expect(alice_ws, type="friend_request_update", id=request.pk, status="accepted", username="erin")
    await expect(erin_ws, type="friend_added", id=alice.pk, username="alice", is_online=True)
    await expect(
        erin_ws, type="friend_request_update", status="accepted", username="alice", direction="outgoing"
    )

    await harness.presence.stream_started(erin.pk, started_at=STARTED, denoise=True, atten_lim_db=100.0)
    await expect(alice_ws, type="streaming_status", username="erin", is_streaming=True)

    second = await in_thread(friendships.send_request)(frank, "alice")
    await expect(alice_ws, type="friend_request", id=second.pk, username="frank")
    await in_thread(friendships.cancel)(frank, second.pk)
    await expect(
        alice_ws, type="friend_request_update", status="cancelled", username="frank", direction="incoming"
    )
    await expect(
        frank_ws, type="friend_request_update", status="cancelled", username="alice", direction="outgoing"
    )

    third = await in_thread(friendships.send_request)(bob, "alice")
    await expect(alice_ws, type="friend_request", id=third.pk)
    await in_thread(friendships.reject)(alice, third.pk)
    await expect(alice_ws, type="friend_request_update", id=third.pk, status="rejected", username="bob")
    await frank_ws.receive_nothing(timeout=0.1)


async def test_unfriending_stops_the_flow_both_ways_at_once(
    make_harness: MakeHarness, befriend: Befriend, alice: User, bob: User, carol: User
) -> None:
    await in_thread(befriend)(alice, bob)
    await in_thread(befriend)(alice, carol)
    harness = make_harness(grace_s=60)
    alice_ws, _ = await harness.join(alice)
    bob_ws, _ = await harness.join(bob)
    await expect(alice_ws, type="presence", username="bob", is_online=True)

    await in_thread(friendships.unfriend)(alice, "bob")
    await expect(alice_ws, type="friend_removed", id=bob.pk, username="bob")
    await expect(bob_ws, type="friend_removed", id=alice.pk, username="alice")

    # An event about bob already on its way to alice (published before the unfriending) is
    # dropped; carol's event sent after it arrives first, so nothing was held back.
    stale = {"type": "streaming_status", "username": "bob", "is_streaming": True}
    await harness.presence.bus.publish(
        {"to": [alice.pk], "about": bob.pk, "key": "s:x", "seq": 99, "event": stale}
    )
    await harness.presence.stream_started(carol.pk, started_at=STARTED, denoise=True, atten_lim_db=100.0)
    await expect(alice_ws, type="streaming_status", username="carol")
    await harness.presence.stream_started(bob.pk, started_at=STARTED, denoise=True, atten_lim_db=100.0)
    await expect(bob_ws, type="streaming_status", username="bob")  # published (to bob's own tabs)...
    await harness.presence.stream_started(alice.pk, started_at=STARTED, denoise=True, atten_lim_db=100.0)
    await expect(alice_ws, type="streaming_status", username="alice")  # ...but never to alice
    await bob_ws.receive_nothing(timeout=0.2)  # nor alice's to bob


async def test_sockets_on_several_tabs_count_once_and_grace_covers_a_reload(
    make_harness: MakeHarness, befriend: Befriend, alice: User, bob: User
) -> None:
    await in_thread(befriend)(alice, bob)
    harness = make_harness(grace_s=0.3)
    alice_ws, _ = await harness.join(alice)
    tab1, _ = await harness.join(bob)
    await expect(alice_ws, type="presence", username="bob", is_online=True)
    tab2, _ = await harness.join(bob)

    await harness.leave(tab1)  # one tab of two closed: still online, nothing said
    assert await harness.presence.is_online(bob.pk)
    await harness.leave(tab2)  # reload: the page's socket closes and a new one opens
    assert not await harness.presence.is_online(bob.pk)
    tab3, _ = await harness.join(bob)
    await alice_ws.receive_nothing(timeout=0.8)  # well past the grace: no offline, no 2nd online
    assert (await db_user(bob)).is_online

    await harness.leave(tab3)
    await expect(alice_ws, type="presence", username="bob", is_online=False)


async def test_bad_client_frames_get_errors_and_the_socket_stays_open(
    make_harness: MakeHarness, alice: User
) -> None:
    ws, _ = await make_harness().join(alice)
    for frame in ["not json", '{"type": "nope"}', "[1, 2]", "x" * 5000, "[" * 2000 + "]" * 2000]:
        await ws.send_to(text_data=frame)
        reply = await expect(ws, type="error")
        assert isinstance(reply["error"], str)
        assert reply["error"].endswith(".")
    await ws.send_to(bytes_data=b"\x00\x01")
    await expect(ws, type="error")
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_json_from() == {"type": "pong"}


async def test_an_unreachable_store_closes_with_4011(make_harness: MakeHarness, alice: User) -> None:
    from streams.presence.redis_store import RedisStore

    harness = make_harness(store=RedisStore("redis://127.0.0.1:1/0", "unreachable", "pid"))
    comm = await harness.open(alice)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    await expect_close(comm, 4011)
    assert await harness.presence.is_online(alice.pk)  # unknown counts as online: streams keep going


# -- ws/stream/<username>/ ------------------------------------------------------------------


async def test_stream_page_refuses_anonymous_unknown_and_strangers(
    make_harness: MakeHarness, alice: User, bob: User
) -> None:
    harness = make_harness()
    for user, path, code in [
        (None, "/ws/stream/bob/", 4401),
        (alice, "/ws/stream/nobody/", 4404),
        (alice, "/ws/stream/bob/", 4403),
    ]:
        comm = await harness.open(user, path)
        connected, _ = await comm.connect()
        assert connected
        await expect_close(comm, code)


async def test_stream_page_follows_the_friends_stream(
    make_harness: MakeHarness, befriend: Befriend, alice: User, bob: User
) -> None:
    await in_thread(befriend)(alice, bob)
    harness = make_harness()
    page, state = await harness.join(alice, "/ws/stream/BOB/")
    assert state == {
        "type": "stream_state",
        "username": "bob",
        "is_streaming": False,
        "started_at": None,
        "denoise": None,
        "atten_lim_db": None,
        "listeners": 0,
        "recording": None,
    }
    presence = harness.presence
    await presence.stream_started(bob.pk, started_at=STARTED, denoise=True, atten_lim_db=40.0)
    await expect(page, type="streaming_status", username="bob", is_streaming=True, denoise=True)
    await presence.listeners_changed(bob.pk, 1)
    await expect(page, type="listeners", username="bob", count=1)
    await presence.settings_changed(bob.pk, denoise=False, atten_lim_db=20.0)
    await expect(page, type="settings", username="bob", denoise=False, atten_lim_db=20.0)

    own, own_state = await harness.join(bob, "/ws/stream/bob/")  # the owner may watch too
    assert (
        own_state | {"is_streaming": True, "listeners": 1, "denoise": False, "recording": "on"} == own_state
    )

    await presence.stream_ended(bob.pk)
    await expect(page, type="streaming_status", is_streaming=False)
    await expect(own, type="streaming_status", is_streaming=False)


async def test_unfriending_closes_the_stream_page_with_4403(
    make_harness: MakeHarness, befriend: Befriend, alice: User, bob: User
) -> None:
    await in_thread(befriend)(alice, bob)
    harness = make_harness()
    page, _ = await harness.join(alice, "/ws/stream/bob/")
    await in_thread(friendships.unfriend)(bob, "alice")
    await expect_close(page, 4403)
