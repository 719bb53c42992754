# A Tandem node: this project installed with `make install` (the step `make run` and `make test` take), ready to
# start a Ray node in Serve's high-throughput mode. CPU by default; for CUDA:
#   docker build --build-arg BASE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04 --build-arg EXTRAS=gpu -t tandem:gpu .
# Run a head node with `docker run tandem ray start --head --block`, or let KubeRay start it (deploy/kuberay/).
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ARG EXTRAS=cpu
# The CPU torch build (torch==2.13.0+cpu) comes from PyTorch's wheel index.
ARG PIP_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu"

RUN apt-get update \
    && apt-get install -y --no-install-recommends make python3 python3-venv python3-dev build-essential \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/tandem
COPY pyproject.toml Makefile README.md serve_config.yaml ./
COPY db db
COPY deployments deployments
COPY models models
COPY ops ops
COPY tandem tandem
COPY training training
RUN make install EXTRAS=${EXTRAS} PIP_ARGS="${PIP_ARGS}" VENV=/opt/venv

ENV PATH=/opt/venv/bin:${PATH} \
    TANDEM_VAR_DIR=/var/lib/tandem
# What `tandem ray-env` prints: Serve's high-throughput mode, no usage reports (ops/serve_mode.py;
# tests/test_deploy_files.py keeps these equal).
ENV RAY_USAGE_STATS_ENABLED=0 \
    VLLM_NO_USAGE_STATS=1 \
    RAY_SERVE_ENABLE_HA_PROXY=1 \
    RAY_SERVE_THROUGHPUT_OPTIMIZED=1 \
    RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S=5 \
    RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE=1 \
    RAY_SERVE_STATUS_GAUGE_REPORT_INTERVAL_S=2

EXPOSE 8000 8080 6379 8265
CMD ["ray", "start", "--head", "--block", "--metrics-export-port=8080", "--dashboard-host=0.0.0.0"]
