"""serve_config.yaml is a valid Serve deploy config whose application builds from its args."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from deployments.app import build_app
from tandem.settings import Settings


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


def test_serve_build_writes_the_deployments_tandem_runs(project_root: Path, tmp_path: Path) -> None:
    env = {"DATABASE_URL": "postgresql://tandem@db/tandem", "TANDEM_RETRIEVER_MAX_REPLICAS": "3",
           "TANDEM_KEYWORDS_NUM_CPUS": "0.5", "TANDEM_LLM_REPLICAS": "2"}
    out = tmp_path / "built.yaml"
    subprocess.run([str(Path(sys.executable).with_name("serve")), "build", "deployments.graph:app", "-o", str(out)],
                   check=True, cwd=project_root, env=os.environ | env, capture_output=True, timeout=300)
    (built,) = yaml.safe_load(out.read_text())["applications"]
    written = {d["name"]: d for d in built["deployments"]}
    expected = _deployments(build_app({"database_url": env["DATABASE_URL"], "retriever_max_replicas": 3,
                                       "keywords_num_cpus": 0.5, "llm_replicas": 2}))
    assert written.keys() == expected.keys()
    for name, deployment in expected.items():
        config = deployment._deployment_config
        assert written[name].get("max_ongoing_requests") == config.max_ongoing_requests, name
        policy = config.autoscaling_config
        if policy is None:
            assert written[name]["num_replicas"] == deployment.num_replicas, name
        else:
            scaling = written[name]["autoscaling_config"]
            assert (scaling["min_replicas"], scaling["max_replicas"]) == (policy.min_replicas, policy.max_replicas)
        assert written[name]["ray_actor_options"]["num_cpus"] == deployment.ray_actor_options["num_cpus"], name
    assert written["Retriever"]["autoscaling_config"]["max_replicas"] == 3
    assert written["Keywords"]["ray_actor_options"]["num_cpus"] == 0.5 and written["LLMServer"]["num_replicas"] == 2


def test_small_models_take_a_share_of_the_llms_gpu_when_asked() -> None:
    shared = {"database_url": "postgresql://tandem@db/tandem", "device": "cuda", "llm_num_gpus": 0.7,
              "candidates_num_gpus": 0.1, "retriever_num_gpus": 0.1}
    found = _deployments(build_app(shared))
    assert found["LLMServer"].ray_actor_options["num_gpus"] == 0.7
    assert found["Candidates"].ray_actor_options["num_gpus"] == found["Retriever"].ray_actor_options["num_gpus"] == 0.1
    assert "num_gpus" not in found["Keywords"].ray_actor_options  # no share asked: its model stays on the CPU
    settings = Settings(**shared)
    assert [settings.model_device(n) for n in ("candidates", "retriever", "keywords")] == ["cuda", "cuda", "cpu"]
    assert Settings(database_url="postgresql://x", candidates_num_gpus=0.1).model_device("candidates") == "cpu"


def test_on_cuda_the_engine_captures_graphs_and_training_gets_the_gpu_it_asks_for() -> None:
    from deployments.servers.llm_engine import engine_args
    from deployments.servers.trainer import task_options

    cuda = Settings(database_url="postgresql://x", device="cuda", llm_gpu_memory_utilization=0.6, train_num_gpus=1)
    args = engine_args(cuda)
    assert (args.gpu_memory_utilization, args.enforce_eager, args.kv_cache_memory_bytes) == (0.6, False, None)
    assert engine_args(cuda.model_copy(update={"llm_enforce_eager": True})).enforce_eager is True
    cpu = Settings(database_url="postgresql://x")
    assert engine_args(cpu).enforce_eager is True
    assert engine_args(cpu).kv_cache_memory_bytes == int(cpu.llm_kv_cache_gib * 2**30)

    assert task_options(cuda) == {"num_cpus": cuda.train_num_cpus, "num_gpus": 1}
    assert cuda.model_device("train") == "cuda"
    no_gpu = cuda.model_copy(update={"train_num_gpus": 0.0})
    assert task_options(no_gpu) == {"num_cpus": cuda.train_num_cpus} and no_gpu.model_device("train") == "cpu"
    assert task_options(cpu) == {"num_cpus": cpu.train_num_cpus} and cpu.model_device("train") == "cpu"
    # Custom resources keep trainings on the nodes started with them.
    placed = Settings(database_url="postgresql://x", train_resources={"training": 1})
    assert task_options(placed) == {"num_cpus": placed.train_num_cpus, "resources": {"training": 1.0}}
