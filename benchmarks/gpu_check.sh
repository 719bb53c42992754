#!/usr/bin/env bash
# The GPU path in one go, on a machine with one NVIDIA GPU: install the `gpu` extra, start the stack on CUDA (the
# production models when TANDEM_LLM_MODEL & co. name them, the local ones otherwise), wait for the first-run
# bootstrap, exercise every pipeline once, then compare recommendation throughput with the one-request-at-a-time
# baseline at 1, 8 and 32 clients (benchmarks/baselines.py), and print a summary. Aimed at under eight minutes
# with the local models. It has not run where it was written (no GPU there); without a GPU it stops at once.
#
#   benchmarks/gpu_check.sh            # gated production models also need HF_TOKEN (tandem models prefetch)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q "^GPU "; then
  echo "gpu_check: no NVIDIA GPU on this machine (nvidia-smi lists none); this check needs one." >&2
  exit 2
fi
started=$(date +%s)
VENV=.venv-gpu
make install EXTRAS=gpu,dev VENV=$VENV PIP_ARGS="${PIP_ARGS:-}"
PY=$VENV/bin/python

# One card shared by every model and the trainings (the bootstrap's runs record "device": "cuda" in their metrics).
export TANDEM_DEVICE=cuda TANDEM_LLM_NUM_GPUS=0.6 TANDEM_LLM_GPU_MEMORY_UTILIZATION=0.5 \
  TANDEM_CANDIDATES_NUM_GPUS=0.1 TANDEM_RETRIEVER_NUM_GPUS=0.1 TANDEM_KEYWORDS_NUM_GPUS=0.1 TANDEM_TRAIN_NUM_GPUS=0.1 \
  TANDEM_RANKER_TIMEOUT_S=600 TANDEM_QA_TIMEOUT_S=600 TANDEM_VAR_DIR="${TANDEM_VAR_DIR:-$PWD/var-gpu}"
TANDEM_ADMIN_KEY=$($PY -c "from db.api_keys import new_key; print(new_key())")
export TANDEM_ADMIN_KEY
mkdir -p "$TANDEM_VAR_DIR"
$VENV/bin/tandem models prefetch
$VENV/bin/tandem assets build
setsid $VENV/bin/tandem run > "$TANDEM_VAR_DIR/run.log" 2>&1 &
stack=$!
trap 'kill -INT -- -$stack 2>/dev/null; wait $stack 2>/dev/null || true' EXIT

$PY benchmarks/exercise.py --wait-bootstrap --timeout-s 600 | tee "$TANDEM_VAR_DIR/exercise.json"
$PY benchmarks/baselines.py --seconds 20 --concurrency 1 8 32 --pipelines recommendations \
  | tee "$TANDEM_VAR_DIR/baselines.json"
echo "gpu_check: done in $(( $(date +%s) - started )) s; $(nvidia-smi --query-gpu=name,memory.used --format=csv,noheader)"
