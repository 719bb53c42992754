"""`tandem cluster-smoke`: the application on a two-node Ray cluster on this machine, deployed the production
way (`ray start --head`, `ray start --address`, `serve deploy serve_config.yaml`), then one replica's process
killed while requests keep coming; then models trained through the API on one node served on the other from the
artifact store alone (ops/cluster_artifacts.py).

Both nodes run on this machine, each with a custom resource named after it that places the work: the head node
(two CPUs) runs the LLM and the LRURec replica, the worker node (one CPU) the keyword replicas and every training
task (TANDEM_TRAIN_RESOURCES, as a cluster with training nodes would set it). So the application spans both nodes
and a model is trained on one node and served on the other. The config deployed is the project's
serve_config.yaml with what a single machine needs changed: free ports, the proxy on the head node only (two
proxies cannot bind one port), this checkout's model folder, a fresh embedded database, two keyword replicas so
one can be killed (at an eighth of a CPU each), those placements, and a var dir and an artifact cache per node
(the worker node runs in a private mount namespace, `unshare --mount`, so it sees its own folder at the var dir's
path: root, or CAP_SYS_ADMIN, is needed).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import yaml
from rich.console import Console

from db.api_keys import new_key
from db.server import database_url
from ops import serve_mode
from ops.cluster_artifacts import artifacts_across_nodes, import_movielens
from tandem.settings import Settings

log = logging.getLogger("tandem.cluster")

KILLED_DEPLOYMENT = "Keywords"
# The custom resource of each node, which places replicas and training tasks on it.
HEAD, WORKER = "head", "worker"
# `ray start --head` turns on token authentication (the token in ~/.ray/auth_token); every other client
# (the worker node, `serve deploy`, this driver) must be told to send it.
TOKEN_AUTH = {"RAY_AUTH_MODE": "token"}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tool(name: str) -> str:
    """`ray` or `serve` of this Python's environment."""
    return str(Path(sys.executable).with_name(name))


def _run(*args: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, env=os.environ | TOKEN_AUTH | (env or {}))
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def smoke_config(source: Path, target: Path, settings: Settings, var_dir: Path, db_url: str, http_port: int,
                 admin_key: str) -> None:
    config = yaml.safe_load(source.read_text())
    config["proxy_location"] = "HeadOnly"
    config["http_options"] = {"host": "127.0.0.1", "port": http_port}
    app = config["applications"][0]
    # The key through the environment, as on a real cluster: not in the config's args, which the dashboard shows.
    app["runtime_env"] = {"env_vars": {"TANDEM_VAR_DIR": str(var_dir), "TANDEM_ADMIN_KEY": admin_key}}
    # No first-run bootstrap: its training tasks would take the CPU a killed replica frees, and the replacement
    # could not be placed until they end. The checkout's model folders, outside the nodes' var dirs.
    app["args"] |= {"database_url": db_url, "var_dir": str(var_dir), "llm_model": settings.llm_path,
                    "bert_model": settings.bert_path, "bart_model": settings.bart_path, "keywords_replicas": 2,
                    "llm_kv_cache_gib": 0.5, "log_level": "WARNING", "bootstrap": "off",
                    "train_resources": {WORKER: 1}}
    app["deployments"] = [
        {"name": name, "ray_actor_options": {"num_cpus": cpus, "resources": {node: 1}}}
        for name, cpus, node in (("LLMServer", settings.llm_num_cpus, HEAD),
                                 ("Candidates", settings.candidates_num_cpus, HEAD), ("Keywords", 0.125, WORKER))]
    target.write_text(yaml.safe_dump(config, sort_keys=False))


def wait_ready(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=10).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise TimeoutError(f"the application at {url} was not ready within {timeout_s:g} s")


def head_node(gcs: str) -> str:
    done = subprocess.run([_tool("ray"), "list", "nodes", "--format", "json", "--address", gcs],
                          capture_output=True, text=True, timeout=120, env=os.environ | TOKEN_AUTH)
    if done.returncode != 0:
        raise RuntimeError(f"ray list nodes failed: {done.stderr[-2000:]}")
    return next(n["node_id"] for n in json.loads(done.stdout) if n["is_head_node"])


def task_nodes(gcs: str, name: str) -> set[str]:
    """The nodes that ran Ray tasks called `name` (the trainer names its tasks `train:<pipelines>`)."""
    done = subprocess.run([_tool("ray"), "list", "tasks", "--detail", "--format", "json", "--limit", "1000",
                           "--filter", f"name={name}", "--address", gcs],
                          capture_output=True, text=True, timeout=120, env=os.environ | TOKEN_AUTH)
    if done.returncode != 0:
        raise RuntimeError(f"ray list tasks failed: {done.stderr[-2000:]}")
    return {t["node_id"] for t in json.loads(done.stdout) if t.get("node_id")}


def replica_nodes(gcs: str) -> dict[str, list[tuple[str, int, str]]]:
    """Per deployment, its live replicas as (actor name, process id, node id), from Ray's state API."""
    done = subprocess.run([_tool("ray"), "list", "actors", "--detail", "--format", "json", "--limit", "1000",
                           "--filter", "state=ALIVE", "--address", gcs],
                          capture_output=True, text=True, timeout=120, env=os.environ | TOKEN_AUTH)
    if done.returncode != 0:
        raise RuntimeError(f"ray list actors failed: {done.stderr[-2000:]}")
    found: dict[str, list[tuple[str, int, str]]] = {}
    for actor in json.loads(done.stdout):
        if actor["class_name"].startswith("ServeReplica:"):
            deployment = actor["class_name"].split(":")[-1]
            found.setdefault(deployment, []).append((actor["name"], int(actor["pid"]), actor["node_id"]))
    return found


class Traffic:
    """Keyword requests one after another in a thread, each outcome kept."""

    def __init__(self, url: str, headers: dict[str, str]):
        self.url, self.headers, self.statuses, self._stop = url, headers, [], threading.Event()
        self._thread = threading.Thread(target=self._send, daemon=True)

    def _send(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60, headers=self.headers) as client:
            while not self._stop.is_set():
                try:
                    self.statuses.append(client.post("/v1/keywords", json={"text": "이사화물 통관 예약"}).status_code)
                except httpx.HTTPError as exc:
                    self.statuses.append(type(exc).__name__)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def cluster_smoke(settings: Settings, config: Path, timeout_s: float = 600) -> dict:
    console = Console(stderr=True)
    ray, serve = _tool("ray"), _tool("serve")
    gcs_port, dashboard_port, http_port = _free_port(), _free_port(), _free_port()
    gcs, url = f"127.0.0.1:{gcs_port}", f"http://127.0.0.1:{http_port}"
    work = Path(tempfile.mkdtemp(prefix="tandem-cluster-"))
    try:
        with database_url(None, work / "pgdata") as db_url:
            admin_key = new_key()
            auth = {"Authorization": f"Bearer {admin_key}"}
            # One var dir path for the application, a disk of its own on each node: the worker node runs in a
            # private mount namespace where that path is another folder, as /var/lib/tandem is on two machines.
            var_dirs = {"head": work / "var", "worker": work / "var-worker"}
            for folder in var_dirs.values():
                folder.mkdir()
            smoke_config(config, work / "serve_config.yaml", settings, var_dirs["head"], db_url, http_port, admin_key)
            # Every node in Serve's high-throughput mode, as serve_config.yaml asks of a cluster; HAProxy's side
            # ports free, beside a stack that may be running on this machine.
            mode = serve_mode.node_environment() | {"RAY_SERVE_HAPROXY_STATS_PORT": str(_free_port()),
                                                    "RAY_SERVE_HAPROXY_METRICS_PORT": str(_free_port())}
            # Each node caches artifacts on its own disk, read from its own environment.
            caches = {"head": work / "cache-head", "worker": work / "cache-worker"}
            with console.status("starting the Ray head node"):
                _run(ray, "start", "--head", f"--port={gcs_port}", "--num-cpus=2",
                     f"--resources={json.dumps({HEAD: 100})}", "--include-dashboard=true",
                     "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
                     f"--metrics-export-port={_free_port()}", "--disable-usage-stats",
                     env=mode | {"TANDEM_ARTIFACT_CACHE_DIR": str(caches["head"])})
            with console.status("starting a worker node"):
                # A second node on the same host needs its own agent port and worker port range.
                _run("unshare", "--mount", "--propagation", "private", "sh", "-c",
                     'mount --bind "$1" "$2" && shift 2 && exec "$@"', "sh", str(var_dirs["worker"]),
                     str(var_dirs["head"]),
                     ray, "start", f"--address={gcs}", "--num-cpus=1", f"--resources={json.dumps({WORKER: 100})}",
                     f"--metrics-export-port={_free_port()}",
                     f"--dashboard-agent-listen-port={_free_port()}", "--min-worker-port=20000",
                     "--max-worker-port=29999", "--disable-usage-stats",
                     env=mode | {"TANDEM_ARTIFACT_CACHE_DIR": str(caches["worker"])})
            with console.status("serve deploy serve_config.yaml, waiting for /readyz"):
                _run(serve, "deploy", str(work / "serve_config.yaml"), "--address",
                     f"http://127.0.0.1:{dashboard_port}")
                wait_ready(url, timeout_s)
            before = replica_nodes(gcs)
            nodes = {node for replicas in before.values() for _, _, node in replicas}
            completion = httpx.post(f"{url}/v1/completions", json={"prompt": "Hello", "max_tokens": 4}, timeout=120,
                                    headers=auth)
            name, pid, _ = before[KILLED_DEPLOYMENT][0]
            with console.status(f"killing {name} (pid {pid}) under load"), Traffic(url, auth) as traffic:
                time.sleep(3)
                os.kill(pid, signal.SIGKILL)
                killed_at, replaced_s = time.monotonic(), None
                while time.monotonic() - killed_at < timeout_s:
                    now = replica_nodes(gcs).get(KILLED_DEPLOYMENT, [])
                    if len(now) == len(before[KILLED_DEPLOYMENT]) and name not in {n for n, _, _ in now}:
                        replaced_s = round(time.monotonic() - killed_at, 1)
                        break
                    time.sleep(1)
                time.sleep(3)
            failed = [s for s in traffic.statuses if s != 200]
            with console.status("training two LRURec versions through the API, serving them from the store"):
                import_movielens(db_url, settings.data_dir)
                head = head_node(gcs)
                by_node = {node: caches["head" if node == head else "worker"] for node in nodes}
                serving_node = before["Candidates"][0][2]
                artifacts = artifacts_across_nodes(url, auth, by_node, serving_node, var_dirs, timeout_s)
                trained_on = task_nodes(gcs, "train:lrurec")
                artifacts["trained_on_other_node"] = bool(trained_on) and serving_node not in trained_on
                artifacts["ok"] = artifacts["ok"] and artifacts["trained_on_other_node"]
            return {
                "nodes": len(nodes),
                "replicas": {d: [node[:8] for _, _, node in r] for d, r in sorted(before.items())},
                "completion_status": completion.status_code,
                "killed": name, "replaced_after_s": replaced_s,
                "requests_during_kill": len(traffic.statuses), "failed_during_kill": len(failed),
                "failures": sorted({str(s) for s in failed}),
                "artifacts": artifacts,
                "ok": len(nodes) >= 2 and completion.status_code == 200 and replaced_s is not None and not failed
                and artifacts["ok"],
            }
    finally:
        # Serve first, so that the LLM replica shuts its vLLM engine processes down: `ray stop` alone kills
        # the replica and leaves them running. `ray stop` then stops every Ray node on this machine.
        subprocess.run([serve, "shutdown", "--yes", "--address", f"http://127.0.0.1:{dashboard_port}"],
                       capture_output=True, timeout=120, env=os.environ | TOKEN_AUTH)
        subprocess.run([ray, "stop"], capture_output=True, timeout=120)
        shutil.rmtree(work, ignore_errors=True)
