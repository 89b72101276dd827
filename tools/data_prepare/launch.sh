# Shared by run_vae_feature_edit.sh and run_ar_feature_edit.sh (sourced, not run): start
# `python -m revise_prep "${ARGS[@]}"` as one process, or one per GPU with torch.distributed.run
# when NGPUS_PER_NODE is set (NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT for several nodes).
# Python: $PYTHON, else the repository's .venv (scripts/demo.sh or scripts/test.sh made it), else `python`.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ -z "${PYTHON:-}" ] && [ -x "$REPO/.venv/bin/python" ]; then PYTHON="$REPO/.venv/bin/python"; fi
PYTHON="${PYTHON:-python}"

if [ -n "${NGPUS_PER_NODE:-}" ]; then
  exec "$PYTHON" -m torch.distributed.run --nproc_per_node "$NGPUS_PER_NODE" --nnodes "${NNODES:-1}" \
       --node_rank "${NODE_RANK:-0}" --master_addr "${MASTER_ADDR:-127.0.0.1}" \
       --master_port "${MASTER_PORT:-29500}" -m revise_prep "${ARGS[@]}"
else
  exec "$PYTHON" -m revise_prep "${ARGS[@]}"
fi
