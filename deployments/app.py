"""Builders: validated settings in, the Serve application graph out. Classes never build the graph."""

from __future__ import annotations

from typing import Any

import ray
from ray import serve
from ray.serve import Application

from deployments.ingress import Ingress
from deployments.servers.candidates import CandidateServer
from deployments.servers.keywords import KeywordServer
from deployments.servers.llm import LLMServer
from deployments.servers.retriever import RetrieverServer
from deployments.servers.trainer import Trainer
from tandem.access_and_limits import exposed_without_keys
from tandem.logs import serve_logging
from tandem.settings import Settings


def serving_host() -> str | None:
    """The address Serve's proxies bind (serve_config.yaml's `http_options.host`), read from the running Serve
    controller; None where there is none (`serve build`, a test building a graph)."""
    if not ray.is_initialized():
        return None
    client = serve.context._get_global_client(raise_if_no_controller_running=False)
    return client.http_config.host if client is not None else None


def replicas(settings: Settings, name: str) -> dict:
    """Serve options for deployment `name`: a fixed `num_replicas`, or an `autoscaling_config`; and its bounds."""
    bounds = {"max_ongoing_requests": getattr(settings, f"{name}_max_ongoing_requests"),
              "max_queued_requests": getattr(settings, f"{name}_max_queued_requests", -1)}
    if name == "ingress":
        # Twice its own limit, so that requests past it reach the replica and are refused there in the documented
        # shape (Serve's proxy would answer them in plain text).
        bounds["max_ongoing_requests"] *= 2
    low, high = getattr(settings, f"{name}_replicas"), getattr(settings, f"{name}_max_replicas")
    if high is None or high == low:
        return {"num_replicas": low, **bounds}
    return {**bounds, "autoscaling_config": {
        "min_replicas": low, "max_replicas": high,
        "target_ongoing_requests": getattr(settings, f"{name}_target_ongoing_requests"),
        "upscale_delay_s": settings.autoscale_upscale_delay_s,
        "downscale_delay_s": settings.autoscale_downscale_delay_s,
    }}


def build_llm(settings: Settings) -> Application:
    actor_options: dict[str, Any] = {"num_cpus": settings.llm_num_cpus}
    if settings.device == "cuda":
        actor_options["num_gpus"] = settings.llm_num_gpus
    return LLMServer.options(
        **replicas(settings, "llm"),
        ray_actor_options=actor_options,
        logging_config=serve_logging(settings),
    ).bind(settings)


def build_model_server(settings: Settings, deployment, name: str) -> Application:
    """A small-model deployment (candidates, retriever, keywords) with its `<name>_replicas` (or autoscaling
    range) and `<name>_num_cpus` settings; on cuda, `<name>_num_gpus` of a GPU when set."""
    actor_options: dict[str, Any] = {"num_cpus": getattr(settings, f"{name}_num_cpus")}
    if settings.model_device(name) == "cuda":
        actor_options["num_gpus"] = getattr(settings, f"{name}_num_gpus")
    return deployment.options(
        **replicas(settings, name),
        ray_actor_options=actor_options,
        logging_config=serve_logging(settings),
    ).bind(settings)


def build_app(args: dict[str, Any] | None = None) -> Application:
    """Entry point for `serve run deployments.app:build_app` and serve_config.yaml.

    `args` holds Settings fields (as in serve_config.yaml's `args:`); whatever they leave out
    comes from the environment, as everywhere else.
    """
    settings = args if isinstance(args, Settings) else Settings(**(args or {}))
    if settings.database_url is None:
        raise ValueError(
            "the Serve application needs DATABASE_URL; `tandem run` starts the embedded server and sets it"
        )
    if (refused := exposed_without_keys(settings.auth, serving_host())) is not None:
        raise ValueError(refused)
    return Ingress.options(
        **replicas(settings, "ingress"),
        logging_config=serve_logging(settings),
    ).bind(settings, build_llm(settings), build_model_server(settings, CandidateServer, "candidates"),
           Trainer.bind(settings), build_model_server(settings, RetrieverServer, "retriever"),
           build_model_server(settings, KeywordServer, "keywords"))
