"""The house plan of docs/architecture.md, checked: every module imports, and no import runs from a lower floor
to a higher one (read from the source, imports inside functions included)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Each package may import its own floor's and lower floors' packages, never a higher one; on the ground floor,
# `models` and `db` know nothing of each other.
FLOORS = {"models": 0, "db": 0, "tandem": 1, "training": 2, "deployments": 3, "ops": 4, "benchmarks": 5}
# What model code must run without: it trains and tests anywhere.
NOT_IN_MODELS = ("ray", "asyncpg", "fastapi", "vllm")


def modules(package: str) -> list[str]:
    return sorted(".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                  for p in (ROOT / package).rglob("*.py"))


def imported(path: Path, depth: int = 1) -> set[str]:
    """The first `depth` parts of the name of every module `path` imports, anywhere in the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {".".join(a.name.split(".")[:depth]) for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(".".join(node.module.split(".")[:depth]))
    return names


@pytest.mark.parametrize("package", list(FLOORS))
def test_no_import_runs_up(package: str) -> None:
    wrong = {}
    for path in (ROOT / package).rglob("*.py"):
        for name in imported(path):
            if name in FLOORS and name != package and FLOORS[name] >= FLOORS[package]:
                wrong.setdefault(str(path.relative_to(ROOT)), []).append(name)
            if package == "models" and name in NOT_IN_MODELS:
                wrong.setdefault(str(path.relative_to(ROOT)), []).append(name)
    assert not wrong, f"imports against the floors of docs/architecture.md: {wrong}"


# Inside the serving application: the wire types know no server, the servers know no pipeline, the pipelines no
# route (deployments/*.py beside them: the ingress, the app, health, errors and telemetry).
INNER_FLOORS = {"protocol": 0, "servers": 1, "pipelines": 1, "routes": 2}


@pytest.mark.parametrize("room", list(INNER_FLOORS))
def test_the_serving_rooms_import_downwards(room: str) -> None:
    wrong = {}
    for path in (ROOT / "deployments" / room).rglob("*.py"):
        for name in imported(path, depth=2):
            other = name.removeprefix("deployments.")
            if name.startswith("deployments.") and other in INNER_FLOORS and other != room \
                    and INNER_FLOORS[other] >= INNER_FLOORS[room]:
                wrong.setdefault(str(path.relative_to(ROOT)), []).append(name)
    assert not wrong, f"imports against the rooms of docs/architecture.md: {wrong}"


def test_the_floors_name_every_package() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} | {"benchmarks"}
    assert packages - {"tests"} == set(FLOORS)


@pytest.mark.parametrize("package", ["models", "db", "tandem", "training"])
def test_every_module_imports_and_model_code_needs_no_serving(package: str) -> None:
    """Each module of the lower floors imports in a fresh interpreter; none of them loads Ray, and model code
    loads neither asyncpg, FastAPI nor vLLM."""
    banned = ("ray", "deployments", "ops") + (NOT_IN_MODELS if package == "models" else ())
    code = (f"import importlib, sys\nfor m in {modules(package)!r}:\n    importlib.import_module(m)\n"
            f"loaded = sorted(b for b in {banned!r} if b in sys.modules)\nassert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_every_serving_and_operator_module_imports() -> None:
    code = (f"import importlib\nfor m in {modules('deployments') + modules('ops')!r}:\n"
            f"    importlib.import_module(m)")
    # `deployments.graph` builds the application graph on import, which names its database (and only names it).
    env = {**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env)
