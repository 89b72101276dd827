#!/usr/bin/env bash
# Step 2 of ReViSE data preparation: VILA AR-model features -> final training records (see README, "Step 2").
# Edit the variables below (or set them in the environment) and run:
#   bash tools/data_prepare/run_ar_feature_edit.sh
# Multi-GPU: set NGPUS_PER_NODE (and NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT for several nodes).
# Re-running resumes where it stopped.
set -euo pipefail

DATA_FILE="${DATA_FILE:-./data/vae_features/vae_features.txt}"  # step-1 list file (or folder)
OUTPUT_DIR="${OUTPUT_DIR:-./data/ar_features}"                # final records + ar_features.txt
MODEL_PATH="${MODEL_PATH:-./checkpoints/VILA-AR}"             # VILA checkpoint shipped with ReViSE
VIDEO_ROOT="${VIDEO_ROOT:-.}"                                 # relative video paths resolve against this
NUM_WORKERS="${NUM_WORKERS:-2}"
EXTRA_ARGS="${EXTRA_ARGS:-}"                                  # e.g. "--on-video-error black"

ARGS=(ar --data-file "$DATA_FILE" --result-folder "$OUTPUT_DIR" --model-path "$MODEL_PATH"
      --video-root "$VIDEO_ROOT" --num-workers "$NUM_WORKERS")
# shellcheck disable=SC2206
ARGS+=($EXTRA_ARGS)

# the repository's environment (scripts/demo.sh or scripts/test.sh made it) unless PYTHON says otherwise
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ -z "${PYTHON:-}" ] && [ -x "$REPO/.venv/bin/python" ]; then PYTHON="$REPO/.venv/bin/python"; fi
PYTHON="${PYTHON:-python}"

if [ -n "${NGPUS_PER_NODE:-}" ]; then
  exec "$PYTHON" -m torch.distributed.run --nproc_per_node "$NGPUS_PER_NODE" --nnodes "${NNODES:-1}" --node_rank "${NODE_RANK:-0}" \
       --master_addr "${MASTER_ADDR:-127.0.0.1}" --master_port "${MASTER_PORT:-29500}" \
       -m revise_prep "${ARGS[@]}"
else
  exec "$PYTHON" -m revise_prep "${ARGS[@]}"
fi
