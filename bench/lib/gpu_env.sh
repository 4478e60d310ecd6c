#!/usr/bin/env bash
# Sourced by the GPU scripts (bench/gpu_fastpath.sh, bench/gpu_serve.sh) after they set OUT, PYTHON and DEVICE: the
# wheels of .whl/ installed into /tmp/site unless INSTALL=0 (or none are carried), this checkout on the
# path, the hub off, and the GPU's name in $OUT/gpu.txt.
mkdir -p "$OUT"
if [ "${INSTALL:-1}" = 1 ] && ls .whl/*.whl > /dev/null 2>&1; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
if [ "$DEVICE" != cpu ]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
fi
