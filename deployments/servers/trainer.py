"""The trainer deployment: `POST /v1/train` queues runs in `training_runs` and starts them in a Ray task.

Training runs in its own process (a Ray task with its own CPU/GPU request), so serving is untouched.
One replica, so it knows which pipelines are training: a second request for a pipeline that is still
training gets 409 instead of a competing run.
"""

from __future__ import annotations

import asyncio

import ray
from ray import serve

from db import registry
from db.pool import Database
from deployments.protocol.service_error import ServiceError
from deployments.protocol.training import RunRef, TrainAccepted, TrainRequest
from tandem.settings import Settings
from training.pipelines import TrainOptions, plan, train_pipelines

_train_task = ray.remote(max_retries=0)(train_pipelines)


@serve.deployment(name="Trainer", num_replicas=1, max_ongoing_requests=32, ray_actor_options={"num_cpus": 0})
class Trainer:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.db = Database(settings.database_url, min_size=0, max_size=2)
        self.tasks: dict[str, ray.ObjectRef] = {}
        self._watchers: set[asyncio.Task] = set()

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
        options: dict = {"num_cpus": self.settings.train_num_cpus}
        if self.settings.device == "cuda" and self.settings.train_num_gpus:
            options["num_gpus"] = self.settings.train_num_gpus
        task = _train_task.options(**options).remote(
            self.settings, self.settings.database_url, runs,
            # Unset fields stay unset, so that a learning rate not given is the deployment's.
            TrainOptions.model_validate(request.model_dump(exclude={"pipeline"}, exclude_unset=True)),
        )
        self.tasks.update({p: task for p in pipelines})
        self._watchers.add(watcher := asyncio.create_task(self._fail_if_lost(task, [r for _, r in runs])))
        watcher.add_done_callback(self._watchers.discard)
        return TrainAccepted(run_id=runs[0][1], runs=[RunRef(id=r, pipeline=p) for p, r in runs])
