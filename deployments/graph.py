"""The application as an object, for `serve build deployments.graph:app`: the graph `tandem run` deploys, built
from the environment (DATABASE_URL and TANDEM_*), so the deployments section that `serve build` writes (replicas,
autoscaling, CPUs, GPUs, limits) is exactly what runs. serve_config.yaml passes the same settings as `args` to
`deployments.app:build_app` instead; either deploys the same graph."""

from deployments.app import build_app

app = build_app()
