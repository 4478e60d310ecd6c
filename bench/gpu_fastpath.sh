#!/usr/bin/env bash
# The audition fast path's GPU check for a lent H100/H200 (the `device` tool), in one call:
# bench/audition_latency.py at the real 1.7B shape (bf16, random weights): stock, lean, fast (CUDA graph)
# and the diagnostic "fast, no graph", each run's codes compared with stock's (same seed).
# Exit status is the benchmark's: 0 codes equal and the graph captured, 1 codes differ, 3 codes equal but
# the graph fell back to the eager path (reason printed), 124 timed out. Logs go to $OUT; the table last.
#
#   bash bench/gpu_fastpath.sh                                  # on the lent GPU, .whl/ carried along
#   SHAPE=tiny DEVICE=cpu FRAMES=20 PYTHON=.venv/bin/python bash bench/gpu_fastpath.sh   # rehearsal on a CPU
#
# Expects the wheels of .whl/ (see README there) unless PYTHON already has qwen-tts (then INSTALL=0 skips it).
set -uo pipefail
OUT=${OUT:-/tmp/milo-gpu-out}
PYTHON=${PYTHON:-python3}
SHAPE=${SHAPE:-1.7b}
DEVICE=${DEVICE:-cuda}
FRAMES=${FRAMES:-100}
RUNS=${RUNS:-2}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-240}
source "$(dirname "${BASH_SOURCE[0]}")/lib/gpu_env.sh"
"$PYTHON" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"

start=$(date +%s)
timeout "$BENCH_TIMEOUT" "$PYTHON" bench/audition_latency.py --shape "$SHAPE" --device "$DEVICE" --frames "$FRAMES" \
  --runs "$RUNS" > "$OUT/audition-fastpath.log" 2>&1
status=$?
took=$(( $(date +%s) - start ))
echo "audition fast path: exit $status after $took s" >> "$OUT/audition-fastpath.log"

echo "=== engine log (paths, graph capture, fallbacks)"
grep -E "^\[engine\]|prepared in|^built" "$OUT/audition-fastpath.log" | cut -c1-400
echo "=== audition ($SHAPE, $DEVICE)"
grep -E "^run " "$OUT/audition-fastpath.log" | cut -c1-200
grep -A8 "^Audition latency" "$OUT/audition-fastpath.log" || tail -25 "$OUT/audition-fastpath.log"
echo "exit $status after $took s (0: codes equal and graph captured; 1: codes differ; 3: graph fell back; 124: timeout)"
exit $status
