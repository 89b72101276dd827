#!/usr/bin/env bash
# Step 1 of ReViSE data preparation: Wan2.1 VAE latents + umT5 embeddings (see README, "Step 1").
# Edit the variables below (or set them in the environment) and run:
#   bash tools/data_prepare/run_vae_feature_edit.sh
# Multi-GPU: set NGPUS_PER_NODE (and NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT for several nodes);
# the script then launches one process per GPU with torchrun. Re-running resumes where it stopped.
set -euo pipefail

CKPT_DIR="${CKPT_DIR:-./Wan2.1-T2V-1.3B}"            # Wan release dir (original or diffusers layout) or hub id
VIDEO_LIST_PATH="${VIDEO_LIST_PATH:-./data/edit_pairs.json}"  # input JSON list of edit pairs
OUTPUT_DIR="${OUTPUT_DIR:-./data/vae_features}"      # records; vae_features.txt etc. in ./data/vae_features.revise-prep
VIDEO_ROOT="${VIDEO_ROOT:-.}"                        # relative video paths are resolved against this
FRAME_NUM="${FRAME_NUM:-81}"                         # 4n+1
SAMPLING_RATE="${SAMPLING_RATE:-3}"                  # frame interval (lowered for short videos)
TARGET_SIZE="${TARGET_SIZE:-480,832}"                # height,width
SKIP_NUM="${SKIP_NUM:-0}"                            # frames skipped at the start
NUM_WORKERS="${NUM_WORKERS:-4}"                      # decoding workers per GPU
EXTRA_ARGS="${EXTRA_ARGS:-}"                         # e.g. "--vae-dtype bfloat16 --t5_cpu"

ARGS=(vae --ckpt_dir "$CKPT_DIR" --video_list_path "$VIDEO_LIST_PATH" --output_dir "$OUTPUT_DIR"
      --video-root "$VIDEO_ROOT" --frame_num "$FRAME_NUM" --sampling_rate "$SAMPLING_RATE"
      --target_size "$TARGET_SIZE" --skip_num "$SKIP_NUM" --num-workers "$NUM_WORKERS")
# shellcheck disable=SC2206
ARGS+=($EXTRA_ARGS)

source "$(dirname "${BASH_SOURCE[0]}")/launch.sh"
