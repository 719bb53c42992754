"""`tandem run`: PostgreSQL, a local Ray cluster and the Serve application, in the foreground until Ctrl-C."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from contextlib import ExitStack

from pydantic import SecretStr
from rich.console import Console

from db.api_keys import new_key
from db.server import database_url
from ops import serve_mode
from ops.assets import build_assets
from tandem.access_and_limits import exposed_without_keys
from tandem.settings import Settings

log = logging.getLogger("tandem.stack")
APP_NAME = "tandem"


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _on_stop_signals(handler) -> None:
    # Set explicitly: a shell may start us with SIGINT ignored, and ray.init() installs its own SIGTERM
    # handler. Every stop signal gets the same orderly shutdown: Serve, then Ray, then PostgreSQL.
    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)


def start_ray(settings: Settings) -> None:
    """A local Ray cluster in Serve's high-throughput mode (ops/serve_mode.py)."""
    serve_mode.enter()
    import ray

    ray.init(
        include_dashboard=False,
        _metrics_export_port=settings.metrics_port,
        log_to_driver=settings.log_level.upper() == "DEBUG",
        logging_level=settings.log_level.upper(),
    )


def start_serve(settings: Settings) -> None:
    """Deploy the application; replicas get `settings` through `bind`, not from their environment."""
    from ray import serve

    from deployments.app import build_app

    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(build_app(settings), name=APP_NAME, route_prefix="/")


def readiness(base_url: str) -> dict | None:
    """/readyz's body, whatever its status; None when it does not answer."""
    try:
        with urllib.request.urlopen(f"{base_url}/readyz", timeout=10) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:  # 503: not every part is ready, the body says which
        return json.load(exc)
    except OSError:
        return None


def api_headers() -> dict[str, str]:
    """What a client of a running stack sends: the key in TANDEM_API_KEY, else TANDEM_ADMIN_KEY."""
    key = os.environ.get("TANDEM_API_KEY") or os.environ.get("TANDEM_ADMIN_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def wait_ready(base_url: str, timeout_s: float = 300.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (readiness(base_url) or {}).get("status") == "ready":
            return True
        time.sleep(1)
    return False


def follow_bootstrap(console: Console, base_url: str, poll_s: float = 5.0) -> None:
    """Print each step of the first-run bootstrap as it starts and ends, until all have; at once when there is
    none left."""
    shown: dict[str, str] = {}
    while True:
        boot = (readiness(base_url) or {}).get("bootstrap")
        if boot is None or (not shown and boot["status"] == "finished"):  # none, or one that ended before this start
            return
        if not shown:
            console.print("First run: loading the shared data and training a quick model of every pipeline; the "
                          "pipelines answer meanwhile (from fallbacks until their models are in). Progress: /readyz")
        for step in boot["steps"]:
            if step["status"] != "queued" and shown.get(step["name"]) != step["status"]:
                left = f"   about {boot['eta_s'] / 60:.0f} min left" if boot["eta_s"] else ""
                detail = f" ({step['detail']})" if step["status"] == "failed" else ""
                console.print(f"  bootstrap  {step['name']:<14} {step['status']}{detail}{left}")
            shown[step["name"]] = step["status"]
        if boot["status"] == "finished":
            failed = [s["name"] for s in boot["steps"] if s["status"] == "failed"]
            console.print("[bold green]Bootstrap finished[/]: every pipeline answers from its own models." if not failed
                          else f"[bold red]Bootstrap finished, but {', '.join(failed)} failed[/]: see /readyz; "
                               "`tandem bootstrap` tries again.")
            return
        time.sleep(poll_s)


def run(settings: Settings) -> None:
    console = Console()
    _on_stop_signals(_raise_interrupt)
    if (refused := exposed_without_keys(settings.auth, settings.host)) is not None:
        raise ValueError(refused)
    with ExitStack() as stack:
        try:
            build_assets(settings)
            with console.status("starting PostgreSQL"):
                url = stack.enter_context(database_url(settings.database_url, settings.pgdata_dir))
            settings = settings.model_copy(update={"database_url": url})
            run_key = settings.auth == "keys" and settings.admin_key is None
            if run_key:
                settings = settings.model_copy(update={"admin_key": SecretStr(new_key())})
            with console.status("starting Ray and the Serve application (the LLM engine takes about a minute on CPU)"):
                start_ray(settings)
                _on_stop_signals(_raise_interrupt)
                stack.callback(stop_ray)
                start_serve(settings)
            base = f"http://{settings.host}:{settings.port}"
            ready = wait_ready(base)
            console.print(f"[bold green]Tandem is {'up' if ready else 'up, but not ready (see /readyz)'}[/]")
            console.print(f"  page         {base}/")
            console.print(f"  API          {base}   (OpenAPI docs: {base}/docs)")
            console.print(f"  health       {base}/healthz   {base}/readyz")
            console.print(f"  completions  {base}/v1/completions   model '{settings.llm_name}'")
            console.print(f"  pipelines    {base}/v1/recommendations   {base}/v1/retrieve   {base}/v1/qa")
            console.print(f"  metrics      http://127.0.0.1:{settings.metrics_port}/metrics   (Prometheus)")
            console.print(f"  database     {url}")
            console.print(f"  state        {settings.var_dir}")
            if run_key:
                console.print(f"  admin key    {settings.admin_key.get_secret_value()}   (this run's; set "
                              "TANDEM_ADMIN_KEY to choose one, `tandem keys create` makes lasting ones)")
            elif settings.auth == "off":
                console.print("  [bold red]no API keys[/] (TANDEM_AUTH=off): anyone who reaches the port may train "
                              "and write")
            console.print("Press Ctrl-C to stop.")
            follow_bootstrap(console, base)
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            console.print("stopping…")
            # A second Ctrl-C must not cut the shutdown short and leave PostgreSQL or Ray behind.
            _on_stop_signals(signal.SIG_IGN)


SERVE_SHUTDOWN_TIMEOUT_S = 60.0


def stop_ray() -> None:
    """Serve, then Ray. Serve's shutdown can fail or hang (its controller's graceful shutdown is retried without
    end when the controller is already gone): it gets a bounded time, and Ray is shut down whatever happened."""
    import ray
    from ray import serve

    def shut_serve() -> None:
        try:
            serve.shutdown()
        except Exception as exc:
            log.warning("Serve did not shut down cleanly; stopping Ray anyway", extra={"error": str(exc)})

    stopper = threading.Thread(target=shut_serve, daemon=True)
    stopper.start()
    stopper.join(SERVE_SHUTDOWN_TIMEOUT_S)
    if stopper.is_alive():
        log.warning("Serve's shutdown did not end in time; stopping Ray anyway",
                    extra={"timeout_s": SERVE_SHUTDOWN_TIMEOUT_S})
    ray.shutdown()
