"""Readiness during the first-run bootstrap, over HTTP: an ingress on a database whose bootstrap is under way says
which pipelines are bootstrapping, at which step, with an estimate, and the running step's training progress."""

from __future__ import annotations

import asyncio

import httpx
from ray import serve

from db import bootstrap as steps_db
from db import connect, registry
from tandem.settings import Settings
from tests.conftest import deploy_ingress
from training import bootstrap


def test_readiness_shows_each_pipeline_waiting_for_its_step(serve_app: str, settings: Settings,
                                                            fresh_db: str) -> None:
    async def under_way() -> int:
        async with connect(fresh_db) as conn:
            await bootstrap.plan(conn)
            for name in ("movielens", "korquad", "books", "keyword-pairs"):
                await steps_db.start(conn, name)
                await steps_db.finish(conn, name, "done")
            run_id = await registry.queue_run(conn, "lrurec", {"preset": "quick"})
            await registry.mark_running(conn, run_id)
            await registry.set_progress(conn, run_id, {"epoch": 3, "epochs": 8})
            await steps_db.start(conn, "lrurec", run_id)
            return run_id

    run_id = asyncio.run(under_way())
    url = deploy_ingress(serve_app, "booting", settings.model_copy(update={"database_url": fresh_db}))
    try:
        body = httpx.get(f"{url}/readyz", timeout=30).json()
        boot = body["bootstrap"]
        assert boot["status"] == "running" and boot["eta_s"] > 0
        running = next(s for s in boot["steps"] if s["status"] == "running")
        assert running == {"name": "lrurec", "status": "running", "detail": None, "run_id": run_id,
                           "progress": {"epoch": 3, "epochs": 8}}
        pipelines = body["pipelines"]
        assert pipelines["candidates"]["status"] == "bootstrapping"
        assert pipelines["candidates"]["bootstrapping"]["step"] == "lrurec"
        # The recommender waits for the ranker too, which comes later: a later end than the candidates'.
        assert pipelines["recommendation"]["bootstrapping"]["step"] == "lrurec"
        assert pipelines["recommendation"]["bootstrapping"]["eta_s"] > pipelines["candidates"]["bootstrapping"]["eta_s"]
        assert pipelines["qa"]["bootstrapping"]["step"] == "dpr"
        assert "bootstrapping" not in {pipelines[p]["status"] for p in ("llm", "ingestion", "training")}
        one = httpx.get(f"{url}/readyz/keywords", timeout=30)
        assert one.status_code == 200 and one.json()["bootstrapping"]["step"] == "kobart"
        assert one.json()["bootstrapping"]["eta_s"] == boot["eta_s"]  # the keyword model is the last step
    finally:
        serve.delete("booting")
