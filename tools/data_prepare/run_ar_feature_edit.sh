#!/usr/bin/env bash
# Step 2 of ReViSE data preparation: VILA AR-model features -> final training records (see README, "Step 2").
# Edit the variables below (or set them in the environment) and run:
#   bash tools/data_prepare/run_ar_feature_edit.sh
# Multi-GPU: set NGPUS_PER_NODE (and NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT for several nodes).
# Re-running resumes where it stopped.
set -euo pipefail

DATA_FILE="${DATA_FILE:-./data/vae_features}"                 # step-1 folder (or its list file)
OUTPUT_DIR="${OUTPUT_DIR:-./data/ar_features}"                # final records + ar_features.txt
MODEL_PATH="${MODEL_PATH:-./checkpoints/VILA-AR}"             # VILA checkpoint shipped with ReViSE
VIDEO_ROOT="${VIDEO_ROOT:-.}"                                 # relative video paths resolve against this
NUM_WORKERS="${NUM_WORKERS:-2}"
EXTRA_ARGS="${EXTRA_ARGS:-}"                                  # e.g. "--on-video-error black"

ARGS=(ar --data-file "$DATA_FILE" --result-folder "$OUTPUT_DIR" --model-path "$MODEL_PATH"
      --video-root "$VIDEO_ROOT" --num-workers "$NUM_WORKERS")
# shellcheck disable=SC2206
ARGS+=($EXTRA_ARGS)

source "$(dirname "${BASH_SOURCE[0]}")/launch.sh"
