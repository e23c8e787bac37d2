#!/usr/bin/env bash
# The GPU checks no CPU session can run, prepared as one script for the next session that is lent a GPU.
# CI never runs it. Each part writes its log under $OUT (default gpu-check/) and stops at its own time
# limit, so a part that hangs cannot eat the session's device time. The default, `all`, fits one call of
# 10 minutes (the first compiles included); `more` is the longer figures, for a second call:
#
#   bench/gpu_check.sh tune      # bench/kernels_bench.py --tune: every attention candidate that compiles
#                                #   clean for this GPU, timed against the table's pin (marked *), and
#                                #   TABLE entries of the fastest
#   bench/gpu_check.sh tests     # pytest -m gpu tests/trainer: bf16 kernels against the fp32 references
#   bench/gpu_check.sh all       # tune, then tests (≤ 9 minutes)
#   bench/gpu_check.sh kernels   # bench/kernels_bench.py --quick: kernels against eager/compiled references
#   bench/gpu_check.sh train     # bench/train_bench.py on a small 2K/8K build written by bench/gpu_build.py
#   bench/gpu_check.sh proxy     # bench/train_bench.py --model proxy-150m: the ablations' 150M proxy's
#                                #   tokens/s at 2K, ours against eager (≤ 4 minutes; for docs/ablate.md)
#   bench/gpu_check.sh more      # kernels, then train
#
# What to do with the results: the `tune` log says how the ranked pins (bench/kernels_aot.py, chosen
# without a GPU) compare with the fastest clean candidate; paste its TABLE lines into
# trainer/kernels/attention_configs.py where the fastest wins by a margin worth pinning (they are kept
# by `bench/kernels_aot.py --write`). The `tests` log confirms or corrects the bf16 TOLERANCES in
# trainer/kernels/reference.py (estimates until then; docs/trainer.md says so); the `kernels` and `train`
# logs are the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
OUT="${OUT:-gpu-check}"
mkdir -p "$OUT"
unset TRITON_INTERPRET

part_tune() {
  timeout 300 "$PY" bench/kernels_bench.py --tune --reps 10 2>&1 | tee "$OUT/tune.log"
}
part_tests() {
  timeout 240 "$PY" -m pytest -m gpu tests/trainer -q -rA -p no:cacheprovider 2>&1 | tee "$OUT/tests.log"
}
part_kernels() {
  timeout 280 "$PY" bench/kernels_bench.py --quick 2>&1 | tee "$OUT/kernels.log"
}
part_train() {
  local build="$OUT/build"
  [ -f "$build/manifest.json" ] || timeout 60 "$PY" bench/gpu_build.py "$build" 2>&1 | tee "$OUT/build.log"
  timeout 240 "$PY" bench/train_bench.py "$build" --steps 5 --warmup 2 --json "$OUT/train.json" 2>&1 \
    | tee "$OUT/train.log"
}
part_proxy() {
  local build="$OUT/build"
  [ -f "$build/manifest.json" ] || timeout 60 "$PY" bench/gpu_build.py "$build" 2>&1 | tee "$OUT/build.log"
  timeout 180 "$PY" bench/train_bench.py "$build" --model proxy-150m --seq-lens 2048 \
    --variants gristmill eager --steps 10 --warmup 3 --json "$OUT/proxy.json" 2>&1 | tee "$OUT/proxy.log"
}
run_parts() {
  for part in "$@"; do "part_$part" || echo "gpu_check: part $part failed (rc $?)"; done
}

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || { echo "no GPU here (nvidia-smi failed): nothing to check"; exit 0; }
"$PY" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, \
torch.cuda.get_device_name())" | tee "$OUT/versions.txt"
case "${1:-all}" in
  tune) part_tune ;;
  tests) part_tests ;;
  kernels) part_kernels ;;
  train) part_train ;;
  proxy) part_proxy ;;
  all) run_parts tune tests ;;
  more) run_parts kernels train ;;
  *) echo "usage: $0 [tune|tests|all|kernels|train|proxy|more]"; exit 2 ;;
esac
