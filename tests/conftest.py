"""Session-wide real services: one PostgreSQL, one Ray cluster with the Serve application and its vLLM engine."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from db.api_keys import new_key
from db.server import database_url
from ops import serve_mode
from ops.assets import build_assets
from tandem.settings import Settings
from training.lrurec import TrainRequest, run_training
from training.options import LRURecOptions

SERVE_START_TIMEOUT_S = 600
# Ray's processes export their metrics every 10 s by default; tests that wait for a counter to move (or to stand
# still) wait for exports. Read by every Ray process the tests start, since they inherit this environment.
os.environ.setdefault("RAY_metrics_report_interval_ms", "2000")
# The session's admin key (TANDEM_ADMIN_KEY of the app under test); clients of protected routes send AUTH.
ADMIN_KEY = new_key()
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
# A few epochs of a small LRURec: enough to beat popularity on MovieLens, in well under a minute.
QUICK = TrainRequest(LRURecOptions(hidden=32, max_len=50, max_epochs=3, patience=3, batch_size=64, lr=2e-3))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Before any test module imports ray.serve, which reads the mode once. HAProxy's side ports free, so that the
# session's stack and one started by `make run` can run side by side.
os.environ.setdefault("RAY_SERVE_HAPROXY_STATS_PORT", str(free_port()))
os.environ.setdefault("RAY_SERVE_HAPROXY_METRICS_PORT", str(free_port()))
serve_mode.enter()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # `tandem run` starts a Ray cluster of its own; run it before the session's cluster exists.
    items.sort(key=lambda item: 0 if item.get_closest_marker("own_cluster") else 1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "own_cluster: starts its own Ray cluster, so runs before the shared one")


def active_artifact(pg_url: str, pipeline: str) -> str:
    """Where the active version of `pipeline` keeps its artifact."""
    import asyncpg

    async def fetch() -> str:
        conn = await asyncpg.connect(pg_url)
        try:
            return await conn.fetchval(
                "SELECT artifact_path FROM model_versions WHERE pipeline = $1 AND status = 'active'", pipeline
            )
        finally:
            await conn.close()

    return asyncio.run(fetch())


def wait_for_version(http: httpx.Client, version: str, pipeline: str = "lrurec", timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while http.get("/readyz").json()["models"].get(pipeline) != version:
        assert time.monotonic() < deadline, f"{pipeline} version {version} never became active"
        time.sleep(0.5)


def wait_for_run(http: httpx.Client, run_id: int, timeout_s: float = 900) -> dict:
    deadline = time.monotonic() + timeout_s
    while (run := http.get(f"/v1/train/{run_id}").json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"run {run_id} still {run['status']}: {run['progress']}"
        time.sleep(1)
    return run


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    """Settings for the test session: the checkout's built model assets, short prompts."""
    # A generous LLM budget for the ranking stage: the suite shares 2 cores with training runs.
    # No first-run bootstrap: the tests load what they need themselves (tests/test_bootstrap.py and
    # tests/test_stack.py test the bootstrap).
    # INFO: every replica writes an access line per request (tests/deployments/test_request_ids.py follows them).
    # Merged engines stay eager: compiling one costs ~110 s here for each adapter version, and the suite activates
    # several (the compiled engine's speed is measured by benchmarks/int8_ranker.py and benchmarks/baselines.py).
    settings = Settings(log_level="INFO", llm_kv_cache_gib=0.5, verbalizer_max_history=5,
                        verbalizer_max_title_tokens=12, ranker_timeout_s=120, bootstrap="off",
                        llm_merged_compiled=False, admin_key=SecretStr(ADMIN_KEY))
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
    from ops.stack import start_ray, start_serve, stop_ray, wait_ready

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
    with httpx.Client(base_url=serve_app, timeout=120, headers=AUTH) as client:
        yield client


def deploy_ingress(serve_app: str, name: str, settings: Settings, trainer=None, llm=None, keywords=None) -> str:
    """A second ingress (its own settings, e.g. another database) sharing the running app's model deployments;
    `trainer`, `llm` and `keywords` replace the app's. Returns its URL; remove it with `serve.delete(name)`."""
    from ray import serve

    from deployments.ingress import Ingress

    shared_llm, candidates, shared_trainer, retriever, shared_keywords = (
        serve.get_deployment_handle(d, app_name="tandem")
        for d in ("LLMServer", "Candidates", "Trainer", "Retriever", "Keywords"))
    ingress = Ingress.options(name=f"{name}-ingress").bind(settings, llm or shared_llm, candidates,
                                                           trainer or shared_trainer, retriever,
                                                           keywords or shared_keywords)
    serve.run(ingress, name=name, route_prefix=f"/{name}")
    return f"{serve_app}/{name}"


@pytest.fixture(scope="session")
def metrics_url(settings: Settings, serve_app: str) -> str:
    return f"http://127.0.0.1:{settings.metrics_port}/metrics"


@pytest.fixture(scope="session")
def project_root() -> Path:
    return Path(__file__).resolve().parents[1]


@contextmanager
def empty_database(pg_url: str) -> Iterator[str]:
    """An empty database of its own on the session server, dropped afterwards; yields its URL."""
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
    try:
        yield urlunsplit(urlsplit(pg_url)._replace(path=f"/{name}"))
    finally:
        asyncio.run(admin(f"DROP DATABASE {name} WITH (FORCE)"))


@pytest.fixture
def fresh_db(pg_url: str) -> Iterator[str]:
    with empty_database(pg_url) as url:
        yield url


@pytest.fixture(scope="session")
def trained(http: httpx.Client, settings: Settings, pg_url: str) -> dict:
    """MovieLens latest-small in the session database and a quick LRURec trained from it, active."""
    import asyncpg

    from db.importers import import_ratings
    from db.migrate import migrate

    async def load() -> None:
        conn = await asyncpg.connect(pg_url)
        try:
            await migrate(conn)
            folder = settings.data_dir / "ml-latest-small"
            await import_ratings(conn, folder / "ratings.csv", folder / "movies.csv")
        finally:
            await conn.close()

    asyncio.run(load())
    result = run_training(settings, QUICK, pg_url)
    wait_for_version(http, result["version"])
    return result
