"""How many cores a training task computes on, although it asks Ray for a quarter of one (Ray then sets
OMP_NUM_THREADS=1 in it): the first-run bootstrap every core, a training beside serving TANDEM_TRAIN_THREADS."""

from __future__ import annotations

import os

import ray

from deployments.servers.trainer import _with_threads
from tandem.settings import Settings


def _torch_threads(settings: Settings) -> tuple[int, str]:
    import torch

    return torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS", "")


def threads_in_a_task(settings: Settings, every_core: bool) -> tuple[int, str]:
    task = ray.remote(_with_threads(_torch_threads, every_core)).options(num_cpus=settings.train_num_cpus)
    return ray.get(task.remote(settings))


def test_the_bootstrap_uses_every_core(serve_app: str, settings: Settings) -> None:
    threads, omp = threads_in_a_task(settings, every_core=True)
    assert omp == "1"  # what Ray gives the task, so the test would fail without the wrapper
    assert threads == len(os.sched_getaffinity(0)) > 1


def test_a_training_beside_serving_uses_its_setting(serve_app: str, settings: Settings) -> None:
    assert threads_in_a_task(settings, every_core=False)[0] == settings.train_threads == 1
    every = settings.model_copy(update={"train_threads": 0})
    assert threads_in_a_task(every, every_core=False)[0] == len(os.sched_getaffinity(0))
