#!/usr/bin/env bash
# The speech server's load test on a lent H100/H200 (the `device` tool), in one call: bench/serve.py with
# the real 1.7B shape is not possible without weights, so it serves a checkpoint given in CHECKPOINT (a
# real fine-tuned one carried along), else the tiny model on the GPU (the server's overhead and sharing,
# not the 1.7B's speed). 1, 4 and 8 clients, shared and one-at-a-time, milo-say's first audio as the
# baseline in the same run. The table goes last; JSON to $OUT/serve.json.
#
#   bash bench/gpu_serve.sh                                      # on the lent GPU, .whl/ carried along
#   CHECKPOINT=checkpoints/run/epoch-0004 bash bench/gpu_serve.sh
#   DEVICE=cpu PYTHON=.venv/bin/python INSTALL=0 bash bench/gpu_serve.sh   # rehearsal on a CPU
set -uo pipefail
OUT=${OUT:-/tmp/milo-gpu-out}
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
CLIENTS=${CLIENTS:-1,4,8}
REQUESTS=${REQUESTS:-3}
source "$(dirname "${BASH_SOURCE[0]}")/lib/gpu_env.sh"
export MILO_SERVE_DIR=$OUT/serve-state
extra=()
if [ -n "${CHECKPOINT:-}" ]; then extra+=(--checkpoint "$CHECKPOINT"); fi
timeout "${BENCH_TIMEOUT:-500}" "$PYTHON" bench/serve.py --device "$DEVICE" --clients "$CLIENTS" --requests "$REQUESTS" \
  --json "$OUT/serve.json" "${extra[@]}" 2> "$OUT/serve.log"
status=$?
echo "serve exit $status" >> "$OUT/serve.log"
exit $status
