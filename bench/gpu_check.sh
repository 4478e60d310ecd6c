#!/usr/bin/env bash
# The whole GPU check for a lent H100/H200 (the wheels it needs are carried in .whl/), in one call:
#   1. the audition latency benchmark at the real 1.7B shape (bf16, random weights);
#   2. the training throughput benchmark at the real 1.7B shape (upstream, full, LoRA: samples/s, peak
#      memory, bytes per checkpoint; the LoRA targets are <= 3 % of full's bytes, <= 0.5x its peak memory,
#      >= its samples/s), with the telemetry sampler reading the
#      real NVML once a second in the background while it trains (checks milo_tui/telemetry against a
#      real driver: this machine has none).
# Logs and JSON go to $OUT; short tables are printed last. Expects the wheels of .whl/ (see README there).
set -uo pipefail
OUT=${OUT:-/tmp/milo-gpu-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, torchaudio, transformers; print('torch', torch.__version__, 'torchaudio', torchaudio.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"

timeout 260 python3 bench/audition_latency.py --shape 1.7b --device cuda --frames 100 --runs 2 > "$OUT/audition.log" 2>&1
echo "audition exit $?" >> "$OUT/audition.log"

if [ -f milo_tui/telemetry/nvml.py ]; then
  python3 - > "$OUT/telemetry.log" 2>&1 <<'PY' &
import time
from milo_tui.telemetry.nvml import NvmlSampler
s = NvmlSampler()
print("open:", s.open())
for _ in range(240):
    print(time.strftime("%H:%M:%S"), s.sample(), flush=True)
    time.sleep(1)
PY
  tele=$!
fi
timeout 420 python3 bench/train_throughput.py --device cuda --shape 1.7b --json "$OUT/train.json" > "$OUT/train.log" 2>&1
echo "train exit $?" >> "$OUT/train.log"
[ -n "${tele:-}" ] && kill "$tele" 2>/dev/null

echo "=== telemetry (first and busiest samples)"; head -3 "$OUT/telemetry.log" 2>/dev/null; grep -m2 "util" "$OUT/telemetry.log" 2>/dev/null | tail -1 | cut -c1-600
echo "=== audition"; tail -12 "$OUT/audition.log"
echo "=== training"; tail -12 "$OUT/train.log"
