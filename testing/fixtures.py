"""Shared fixtures of the streams tests: people, friendships, logged-in clients, media folder."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from playwright.sync_api import Browser, sync_playwright
from pytest_django.fixtures import Settings

from fc25_denoise.services import Services
from streams.live.registry import StreamRegistry
from streams.presence.redis_store import RedisStore
from streams.presence.service import Presence
from testing.browser import LiveServer, launch_chromium, make_microphone_wav
from testing.pages import MakePerson, Person
from testing.people import PASSWORD, MakeUser  # noqa: F401 - re-exported
from testing.postgres import ThrowawayPostgres
from testing.stack import AppStack
from users.models import User


@pytest.fixture
def media_root(settings: Settings, tmp_path: Path) -> Path:
    """settings.MEDIA_ROOT moved to a fresh temporary folder."""
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = root
    return root


# --- outage fixtures (whole deployments whose parts a test stops: testing/stack.py) ---
@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[ThrowawayPostgres]:
    """One throw-away PostgreSQL cluster for the session's AppStacks (each gets a database of
    its own, copied from a migrated template); a test may stop it: the next stack starts it."""
    cluster = ThrowawayPostgres()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def make_stack(postgres_cluster: ThrowawayPostgres, tmp_path: Path) -> Iterator[Callable[..., AppStack]]:
    """make_stack(users, friendships, start=True, **settings) -> an AppStack (its first Daphne
    started unless start=False);
    everything it started is stopped at teardown."""
    made: list[AppStack] = []

    def make(
        users: list[str], friendships: list[tuple[str, str]], *, start: bool = True, **settings: str
    ) -> AppStack:
        stack = AppStack(tmp_path / f"stack{len(made)}", users, friendships, pg=postgres_cluster, **settings)
        made.append(stack)
        if start:
            stack.daphne.start()
        return stack

    yield make
    for stack in made:
        stack.close()


# --- presence fixtures (streams/presence/service.py, consumers.py) ---
@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """REDIS_URL when set (the netns runner's private redis), else a throw-away redis-server on
    a unix socket, so the Redis-backed presence tests always run."""
    if settings.REDIS_URL:
        yield settings.REDIS_URL
        return
    from testing.cluster import own_redis

    with own_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


def presence_prefix() -> str:
    return f"test-presence-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_presence() -> Callable[..., Presence]:
    """A Presence on the backend the settings choose (Redis when REDIS_URL is set), with its own
    key prefix so tests never see each other's state."""

    def make(**kwargs: Any) -> Presence:
        if settings.REDIS_URL and "store" not in kwargs:
            kwargs["store"] = RedisStore(
                settings.REDIS_URL, presence_prefix(), f"test-{uuid.uuid4().hex[:8]}"
            )
        return Presence(**kwargs)

    return make


@pytest.fixture
async def make_services(
    transactional_db: None, make_presence: Callable[..., Presence]
) -> AsyncIterator[Callable[..., Services]]:
    """Services around a test Presence (kwargs go to Presence); all closed at teardown,
    before the database is flushed."""
    made: list[Services] = []

    def make(**kwargs: Any) -> Services:
        presence = make_presence(**kwargs)
        made.append(Services(presence=presence, registry=StreamRegistry(events=presence)))
        return made[-1]

    yield make
    for services in made:
        await services.aclose()


class WsHarness:
    """Opens WebSocket connections to `build_application(services)` as a given user."""

    def __init__(self, services: Services) -> None:
        from fc25_denoise.asgi import build_application  # imported late: it builds the app

        self.services = services
        self.presence = services.presence
        self.app = build_application(services)
        self._open: list[WebsocketCommunicator] = []

    async def open(
        self, user: User | None, path: str = "/ws/presence/", origin: str = "http://localhost"
    ) -> WebsocketCommunicator:
        headers = [(b"origin", origin.encode()), (b"host", b"localhost")]
        if user is not None:
            headers.append((b"cookie", (await database_sync_to_async(_cookie)(user)).encode()))
        comm = WebsocketCommunicator(self.app, path, headers=headers)
        self._open.append(comm)
        return comm

    async def join(
        self, user: User, path: str = "/ws/presence/"
    ) -> tuple[WebsocketCommunicator, dict[str, Any]]:
        """Connect, check the handshake succeeded, and return the socket with its first message."""
        comm = await self.open(user, path)
        connected, _ = await comm.connect(timeout=5)
        assert connected
        return comm, await comm.receive_json_from(timeout=5)

    async def leave(self, comm: WebsocketCommunicator) -> None:
        await comm.disconnect(timeout=5)
        self._open.remove(comm)

    async def aclose(self) -> None:
        for comm in self._open:
            await comm.disconnect(timeout=5)
        self._open.clear()


def _cookie(user: User) -> str:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


@pytest.fixture
async def make_harness(make_services: Callable[..., Services]) -> AsyncIterator[Callable[..., WsHarness]]:
    """make_harness(**presence_kwargs) -> a WsHarness over fresh Services; sockets closed first."""
    made: list[WsHarness] = []

    def make(**kwargs: Any) -> WsHarness:
        made.append(WsHarness(make_services(**kwargs)))
        return made[-1]

    yield make
    for harness in made:
        await harness.aclose()


# --- end presence fixtures ---


# --- live path fixtures (streams/live/registry.py, session.py; tests marked webrtc) ---
from testing.peers import close_db_connections  # noqa: E402

AUDIO_DIR = Path(__file__).resolve().parents[1] / "denoise" / "tests" / "data"


@pytest.fixture
def audio_file() -> Callable[[str], str]:
    """Path of a test WAV (48 kHz mono): noisy_snr0, clean_freesound_33711, noise_freesound_573577."""

    def path(name: str) -> str:
        return str(AUDIO_DIR / f"{name}.wav")

    return path


@pytest.fixture
async def live(
    transactional_db: None, make_presence: Callable[..., Presence], media_root: Path
) -> AsyncIterator[Services]:
    """Started Services for live-path tests. After the test (before closing) it asserts that the
    test left no session and no open server-side peer connection behind."""
    presence = make_presence()
    services = Services(presence=presence, registry=StreamRegistry(events=presence))
    await services.start()
    try:
        yield services
        assert services.registry.sessions == {}, "the test left a live session in the registry"
        assert services.registry.open_peer_connections() == 0, "the test left a peer connection open"
    finally:
        await services.aclose()
        await close_db_connections()


class RecordedEvents:
    """A StreamEvents that records each call with the database state it saw (commit order)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, dict[str, Any]]] = []
        self.online: dict[int, bool] = {}
        self.online_answers: list[tuple[int, bool]] = []  # what each is_online() call answered
        self.held: set[int] = set()  # users live on "another process": their claim is refused

    def names(self, user_id: int) -> list[str]:
        return [name for name, uid, _ in self.calls if uid == user_id]

    async def _record(self, name: str, user_id: int, **details: Any) -> None:
        flag = await database_sync_to_async(
            lambda: User.objects.filter(pk=user_id).values_list("is_streaming", flat=True).first()
        )()
        self.calls.append((name, user_id, {**details, "is_streaming_in_db": flag}))

    async def claim_stream(self, user_id: int) -> bool:
        return user_id not in self.held

    async def release_claim(self, user_id: int) -> None:
        return None

    async def recording_stopped(self, user_id: int, reason: str) -> None:
        await self._record("recording_stopped", user_id, reason=reason)

    async def source_stalled(self, user_id: int, stalled: bool) -> None:
        await self._record("source_stalled", user_id, stalled=stalled)

    async def stream_started(self, user_id: int, **details: Any) -> None:
        await self._record("stream_started", user_id, **details)

    async def stream_ended(self, user_id: int) -> None:
        await self._record("stream_ended", user_id)

    async def settings_changed(self, user_id: int, **details: Any) -> None:
        await self._record("settings_changed", user_id, **details)

    async def listeners_changed(self, user_id: int, count: int) -> None:
        await self._record("listeners_changed", user_id, count=count)

    async def is_online(self, user_id: int) -> bool:
        answer = self.online.get(user_id, False)
        self.online_answers.append((user_id, answer))
        return answer


@pytest.fixture
async def make_registry(transactional_db: None, media_root: Path) -> AsyncIterator[Callable[..., Any]]:
    """StreamRegistry(RecordedEvents(), **kwargs), started; at teardown it must hold nothing."""
    made: list[StreamRegistry] = []

    async def make(**kwargs: Any) -> StreamRegistry:
        registry = StreamRegistry(RecordedEvents(), **kwargs)  # type: ignore[arg-type]
        made.append(registry)
        await registry.start()
        return registry

    yield make
    try:
        for registry in made:
            assert registry.sessions == {}, "the test left a live session in the registry"
            assert registry.open_peer_connections() == 0, "the test left a peer connection open"
    finally:
        for registry in made:
            await registry.aclose()
        await close_db_connections()


@pytest.fixture
async def client_pcs() -> AsyncIterator[list[Any]]:
    """Client-side RTCPeerConnections a test opens; all closed at teardown."""
    pcs: list[Any] = []
    yield pcs
    for pc in pcs:
        await pc.close()


# --- end live path fixtures ---


# --- browser fixtures (end-to-end tests; each test module or conftest provides daphne_server) ---
@pytest.fixture
def browser(transactional_db: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Chromium for one test. It depends on the database fixture so it closes first: Playwright's
    sync API runs an event loop in this thread, where Django's ORM (the flush) refuses to run."""
    microphone = make_microphone_wav(tmp_path_factory.mktemp("e2e-audio") / "microphone.wav")
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright, microphone)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def people(browser: Browser, daphne_server: LiveServer) -> Iterator[MakePerson]:
    """people("alice") registers alice in a browser context of her own; closed afterwards."""
    made: list[Person] = []

    def make(username: str, *, microphone: bool = True, presence: bool = True) -> Person:
        made.append(Person(browser, daphne_server, username, microphone=microphone, presence=presence))
        return made[-1]

    yield make
    for person in made:
        person.close()


# --- Janus fixtures (streams/sfu/; tests marked webrtc) ---
@pytest.fixture
def janus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A throw-away Janus from deploy/janus/ on a free port (testing.janus.JanusServer)."""
    from testing.janus import janus_running

    with janus_running(tmp_path_factory.mktemp("janus")) as server:
        yield server


# --- end Janus fixtures ---
