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
