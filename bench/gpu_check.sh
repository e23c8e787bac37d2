#!/usr/bin/env bash
# The GPU checks no CPU session can run, prepared as one script for the next session that is lent a GPU.
# CI never runs it. Each part writes its log under $OUT (default gpu-check/) and stops at its own time
# limit, so a part that hangs cannot eat the session's device time; run the parts as separate calls when
# one call has a per-command limit (the first kernel compilation alone takes minutes):
#
#   bench/gpu_check.sh tests     # pytest -m gpu tests/trainer: bf16 kernels against the fp32 references
#   bench/gpu_check.sh tune      # bench/kernels_bench.py --tune: the attention config TABLE entries for this GPU
#   bench/gpu_check.sh kernels   # bench/kernels_bench.py --quick: kernels against eager/compiled references
#   bench/gpu_check.sh train     # bench/train_bench.py on a small 2K/8K build written by bench/gpu_build.py
#   bench/gpu_check.sh all       # the four in that order
#
# What to do with the results: the `tests` log confirms or corrects the bf16 TOLERANCES in
# trainer/kernels/reference.py (estimates until then; docs/trainer.md says so); the `tune` log's lines go
# into TABLE in trainer/kernels/attention_configs.py; the `kernels` and `train` logs are the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
OUT="${OUT:-gpu-check}"
mkdir -p "$OUT"
unset TRITON_INTERPRET

part_tests() {
  timeout 540 "$PY" -m pytest -m gpu tests/trainer -q -rA -p no:cacheprovider 2>&1 | tee "$OUT/tests.log"
}
part_tune() {
  timeout 540 "$PY" bench/kernels_bench.py --tune --reps 10 2>&1 | tee "$OUT/tune.log"
}
part_kernels() {
  timeout 540 "$PY" bench/kernels_bench.py --quick 2>&1 | tee "$OUT/kernels.log"
}
part_train() {
  local build="$OUT/build"
  [ -f "$build/manifest.json" ] || timeout 120 "$PY" bench/gpu_build.py "$build" 2>&1 | tee "$OUT/build.log"
  timeout 420 "$PY" bench/train_bench.py "$build" --steps 5 --warmup 2 --json "$OUT/train.json" 2>&1 \
    | tee "$OUT/train.log"
}

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || { echo "no GPU here (nvidia-smi failed): nothing to check"; exit 0; }
"$PY" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, \
torch.cuda.get_device_name())" | tee "$OUT/versions.txt"
case "${1:-all}" in
  tests) part_tests ;;
  tune) part_tune ;;
  kernels) part_kernels ;;
  train) part_train ;;
  all) for part in tests tune kernels train; do "part_$part" || echo "gpu_check: part $part failed (rc $?)"; done ;;
  *) echo "usage: $0 [tests|tune|kernels|train|all]"; exit 2 ;;
esac
