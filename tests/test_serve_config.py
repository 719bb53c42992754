"""serve_config.yaml is a valid Serve deploy config whose application builds from its args."""

from pathlib import Path

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from deployments.app import build_app


def test_serve_config_validates_and_builds(project_root: Path) -> None:
    raw = yaml.safe_load((project_root / "serve_config.yaml").read_text())
    config = ServeDeploySchema.parse_obj(raw)
    (app,) = config.applications
    assert app.import_path == "deployments.app:build_app"
    graph = build_app({**app.args, "database_url": "postgresql://tandem@db:5432/tandem"})
    assert type(graph).__name__ == "Application"


def test_builder_refuses_to_start_without_a_database(project_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(ValueError, match="DATABASE_URL"):
        build_app({"llm_replicas": 1})


def _deployments(app) -> dict:
    """Name → bound Deployment of every deployment in the graph under the ingress."""
    ingress = app._bound_deployment
    found = {ingress.name: ingress}
    found |= {a._bound_deployment.name: a._bound_deployment for a in ingress.init_args
              if hasattr(a, "_bound_deployment")}
    return found


def test_a_max_replicas_setting_turns_on_autoscaling() -> None:
    fixed = _deployments(build_app({"database_url": "postgresql://tandem@db/tandem", "llm_replicas": 2}))
    assert fixed["LLMServer"].num_replicas == 2 and fixed["LLMServer"]._deployment_config.autoscaling_config is None
    scaled = _deployments(build_app({"database_url": "postgresql://tandem@db/tandem", "retriever_max_replicas": 3,
                                     "autoscale_downscale_delay_s": 15}))
    policy = scaled["Retriever"]._deployment_config.autoscaling_config
    assert (policy.min_replicas, policy.max_replicas, policy.target_ongoing_requests) == (1, 3, 8.0)
    assert policy.downscale_delay_s == 15 and policy.upscale_delay_s == 30
    assert all(d._deployment_config.autoscaling_config is None for n, d in scaled.items() if n != "Retriever")
    with pytest.raises(ValueError, match="keywords_max_replicas"):
        build_app({"database_url": "postgresql://tandem@db/tandem", "keywords_replicas": 2,
                   "keywords_max_replicas": 1})
