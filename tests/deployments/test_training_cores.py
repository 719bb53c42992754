"""A training task computes on every core it may run on, although it asks Ray for a quarter of one (Ray then
sets OMP_NUM_THREADS=1 in it); TANDEM_TRAIN_THREADS caps it."""

from __future__ import annotations

import os

import ray

from deployments.servers.trainer import _on_task_cores
from tandem.settings import Settings


def _torch_threads(settings: Settings) -> tuple[int, str]:
    import torch

    return torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS", "")


def test_a_training_task_uses_every_core(serve_app: str, settings: Settings) -> None:
    task = ray.remote(_on_task_cores(_torch_threads)).options(num_cpus=settings.train_num_cpus)
    threads, omp = ray.get(task.remote(settings))
    assert omp == "1"  # what Ray gives the task, so the test would fail without the wrapper
    assert threads == len(os.sched_getaffinity(0))

    capped = settings.model_copy(update={"train_threads": 1})
    assert ray.get(task.remote(capped))[0] == 1
