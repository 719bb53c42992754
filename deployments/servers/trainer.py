"""The trainer deployment: `POST /v1/train` queues runs in `training_runs` and starts them in a Ray task.

Training runs in its own process (a Ray task with its own CPU/GPU request), so serving is untouched.
One replica, so it knows which pipelines are training: a second request for a pipeline that is still
training gets 409 instead of a competing run. On a database that holds no data it starts the first-run
bootstrap (training/bootstrap.py) the same way, and resumes one that a stop interrupted.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

import ray
from ray import serve

from db import bootstrap as steps_db
from db import registry
from db.pool import Database
from deployments.protocol.service_error import ServiceError
from deployments.protocol.training import RunRef, TrainAccepted, TrainRequest
from deployments.telemetry import replica_logs
from tandem.pipelines import TRAINABLE
from tandem.settings import Settings
from training import bootstrap
from training.pipelines import TrainOptions, plan, train_pipelines

log = logging.getLogger("tandem.trainer")


def _with_threads(run: Callable, every_core: bool) -> Callable:
    """Ray sets OMP_NUM_THREADS=1 in a task that asks for under one CPU. A training beside serving keeps to
    `train_threads` (its OpenMP team would otherwise fight the LLM engine's for the same cores); the bootstrap, with
    no model to serve yet, takes every core the task may run on."""

    def task(settings: Settings, *args, **kwargs):
        import torch

        threads = 0 if every_core else settings.train_threads
        torch.set_num_threads(threads or len(os.sched_getaffinity(0)))
        return run(settings, *args, **kwargs)

    return task


def task_options(settings: Settings) -> dict:
    """What a training task asks Ray for: a GPU only when `train_num_gpus` gives it one (its runs then train on
    it, `Settings.model_device("train")`), the CPU otherwise; `train_resources` keeps it on the nodes that have
    them."""
    options: dict = {"num_cpus": settings.train_num_cpus}
    if settings.model_device("train") == "cuda":
        options["num_gpus"] = settings.train_num_gpus
    if settings.train_resources:
        options["resources"] = dict(settings.train_resources)
    return options


_train_task = ray.remote(max_retries=0)(_with_threads(train_pipelines, every_core=False))
_bootstrap_task = ray.remote(max_retries=0)(_with_threads(bootstrap.run_bootstrap, every_core=True))


@serve.deployment(name="Trainer", num_replicas=1, max_ongoing_requests=32, ray_actor_options={"num_cpus": 0})
class Trainer:
    async def __init__(self, settings: Settings):
        replica_logs()
        self.settings = settings
        self.db = Database(settings.database_url, min_size=0, max_size=2)
        self.tasks: dict[str, ray.ObjectRef] = {}
        self._watchers: set[asyncio.Task] = set()
        self._bootstrap_restarts = 0
        if settings.bootstrap == "auto":
            try:
                await self._bootstrap()
            except Exception as exc:  # the database is down: serving starts without the bootstrap
                log.warning("bootstrap not started", extra={"error": str(exc)})

    async def _bootstrap(self) -> None:
        async with self.db.acquire() as conn:
            if not await bootstrap.wanted(conn):
                return
            await bootstrap.plan(conn)  # readiness shows the steps from now on
        task = _bootstrap_task.options(name="bootstrap", **task_options(self.settings)).remote(
            self.settings, self.settings.database_url)
        # Trainings asked for meanwhile would compete for the same cores: they wait (409) until it ends.
        self.tasks.update(dict.fromkeys(TRAINABLE, task))
        self._watch(self._resume_if_lost(task))
        log.info("bootstrap started")

    async def _resume_if_lost(self, task: ray.ObjectRef) -> None:
        """A bootstrap task that dies (e.g. killed for memory) fails the step it was in; the next steps run in a
        new task. Each death ends one step, so this stops after as many restarts as there are steps."""
        try:
            await task
        except Exception as exc:
            async with self.db.acquire() as conn:
                failed = await steps_db.fail_running(conn, f"the bootstrap task died: {type(exc).__name__}")
            log.warning("bootstrap task died", extra={"steps": failed, "error": str(exc)[:300]})
            self._bootstrap_restarts += 1
            if self._bootstrap_restarts <= len(bootstrap.STEPS):
                await self._bootstrap()

    def _watch(self, work) -> None:
        self._watchers.add(watcher := asyncio.create_task(work))
        watcher.add_done_callback(self._watchers.discard)

    async def _fail_if_lost(self, task: ray.ObjectRef, run_ids: list[int]) -> None:
        """A task that dies before it reaches its runs (its worker crashed, it could not start) leaves them
        queued or running; mark them failed with the reason. Failures inside a run are recorded by the run."""
        try:
            await task
        except Exception as exc:
            async with self.db.acquire() as conn:
                await registry.fail_unfinished(conn, run_ids, f"training task failed: {type(exc).__name__}: {exc}")

    def _training(self, pipeline: str) -> bool:
        task = self.tasks.get(pipeline)
        return task is not None and not ray.wait([task], timeout=0)[0]

    async def submit(self, request: TrainRequest) -> TrainAccepted | ServiceError:
        pipelines = plan(request.pipeline)
        if busy := [p for p in pipelines if self._training(p)]:
            return ServiceError(status=409, type="conflict", param="pipeline",
                                message=f"already training: {', '.join(busy)}; wait for that run to end")
        async with self.db.acquire() as conn:
            runs = [(p, await registry.queue_run(conn, p, request.model_dump())) for p in pipelines]
        # Named for Ray's state API and dashboard (`ray list tasks --filter name=train:lrurec`).
        task = _train_task.options(name=f"train:{'+'.join(pipelines)}", **task_options(self.settings)).remote(
            self.settings, self.settings.database_url, runs,
            # Unset fields stay unset, so that a learning rate not given is the deployment's.
            TrainOptions.model_validate(request.model_dump(exclude={"pipeline"}, exclude_unset=True)),
        )
        self.tasks.update({p: task for p in pipelines})
        self._watch(self._fail_if_lost(task, [r for _, r in runs]))
        return TrainAccepted(run_id=runs[0][1], runs=[RunRef(id=r, pipeline=p) for p, r in runs])
