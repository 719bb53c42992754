"""The image and the Kubernetes manifest say what the rest of the project says: the same Serve config, the same
node environment, the same install step, the Ray this code runs."""

from __future__ import annotations

import re
from pathlib import Path

import ray
import yaml

from ops.serve_mode import NODE_ENVIRONMENT


def test_the_rayservice_serves_serve_config_yaml_on_nodes_in_the_high_throughput_mode(project_root: Path) -> None:
    manifest = yaml.safe_load((project_root / "deploy/kuberay/rayservice.yaml").read_text())
    spec = manifest["spec"]
    assert yaml.safe_load(spec["serveConfigV2"]) == yaml.safe_load((project_root / "serve_config.yaml").read_text())
    cluster = spec["rayClusterConfig"]
    assert cluster["rayVersion"] == ray.__version__
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        for container in group["template"]["spec"]["containers"]:
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert {k: env.get(k) for k in NODE_ENVIRONMENT} == NODE_ENVIRONMENT, container["name"]
            assert {"DATABASE_URL", "TANDEM_ADMIN_KEY"} <= env.keys()


def test_the_dockerfile_installs_as_the_makefile_does_and_sets_the_node_environment(project_root: Path) -> None:
    dockerfile = (project_root / "Dockerfile").read_text()
    assert re.search(r"^RUN make install EXTRAS=\$\{EXTRAS\}", dockerfile, re.M)
    env = dict(re.findall(r"\b((?:RAY|VLLM)_[A-Z_]+)=(\S+)", dockerfile))
    assert env == NODE_ENVIRONMENT
    copied = set(re.findall(r"^COPY (\w+) \1$", dockerfile, re.M))
    packages = {p.parent.name for p in project_root.glob("*/__init__.py")} - {"tests", "benchmarks"}
    assert packages <= copied, packages - copied
