"""Session-wide real services: one PostgreSQL, one Ray cluster with the Serve application and its vLLM engine."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from db.server import database_url
from tandem.assets import build_assets
from tandem.settings import Settings

SERVE_START_TIMEOUT_S = 600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # `tandem run` starts a Ray cluster of its own; run it before the session's cluster exists.
    items.sort(key=lambda item: 0 if item.get_closest_marker("own_cluster") else 1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "own_cluster: starts its own Ray cluster, so runs before the shared one")


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    """Settings for the test session: the checkout's built model assets, quiet logs."""
    settings = Settings(log_level="WARNING", llm_kv_cache_gib=0.5)
    build_assets(settings)
    return settings


@pytest.fixture(scope="session")
def pg_url(base_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """DATABASE_URL when set, otherwise a fresh embedded server for this session."""
    with database_url(base_settings.database_url, tmp_path_factory.mktemp("pg") / "pgdata") as url:
        yield url


@pytest.fixture(scope="session")
def settings(base_settings: Settings, pg_url: str) -> Settings:
    return base_settings.model_copy(update={"database_url": pg_url, "port": free_port(), "metrics_port": free_port()})


@pytest.fixture(scope="session")
def serve_app(settings: Settings) -> Iterator[str]:
    """The whole Serve application on a local Ray cluster, started as `tandem run` starts it; yields its URL."""
    from tandem.stack import start_ray, start_serve, stop_ray, wait_ready

    start_ray(settings)
    try:
        start_serve(settings)
        base = f"http://127.0.0.1:{settings.port}"
        assert wait_ready(base, timeout_s=SERVE_START_TIMEOUT_S), "Serve application never became ready"
        yield base
    finally:
        stop_ray()


@pytest.fixture(scope="session")
def http(serve_app: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=serve_app, timeout=120) as client:
        yield client


@pytest.fixture(scope="session")
def metrics_url(settings: Settings, serve_app: str) -> str:
    return f"http://127.0.0.1:{settings.metrics_port}/metrics"


@pytest.fixture(scope="session")
def project_root() -> Path:
    return Path(__file__).resolve().parents[1]


@pytest.fixture
def fresh_db(pg_url: str) -> Iterator[str]:
    """An empty database of its own on the session server, dropped afterwards."""
    import asyncio
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    import asyncpg

    name = f"t_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f"CREATE DATABASE {name}"))
    yield urlunsplit(urlsplit(pg_url)._replace(path=f"/{name}"))
    asyncio.run(admin(f"DROP DATABASE {name} WITH (FORCE)"))
