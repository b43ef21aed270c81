#!/usr/bin/env bash
# The GPU checks of issues 4, 5 and 7 as one prepared run (under 9 minutes on an H100/H200),
# for a bare GPU machine with its own torch: nothing is installed, the checkout runs with
# PYTHONPATH. Results land in $OUT (default ./device_out; at most 7 files, as the device
# tool returns 8), most important first, each step under its own time limit:
#   1. bench/retrain_epoch.py: one epoch on 50,000 images, paper and modern recipes
#   2. bench/gpu.sh: genomes 1 and 3 at the paper's settings, fp32/bf16, 1 and 4 at once
#   3. bench/precision_rank.py: 20 random genomes, fp32 vs bf16 vs tf32 (+ fp32 at seed+1)
#   4. search determinism: the same small search twice (separate caches) -> identical files
#   5. bench/gpu_variants.py: s/epoch of genome 1 by memory format x precision x determinism,
#      and bench/gpu_op_probe.py's failures, if any (ops with no deterministic bf16 kernel)
#   env: RANK_EPOCHS=10 RANK_LIMIT=150 GPU_BUDGET=150 (seconds)
set -u
cd "$(dirname "$0")/.."
O=${OUT:-$PWD/device_out}
mkdir -p "$O"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
PY=${PYTHON:-python3}
LOG=$O/log.txt
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } > "$LOG" 2>&1
cat "$LOG"
step() { echo "== $* ($(date -u +%T), ${SECONDS}s in)" | tee -a "$LOG"; }

step "1. retrain epoch"
for r in paper modern; do
  timeout 75 $PY bench/retrain_epoch.py --device cuda --images 50000 --recipe $r 2>> "$LOG"
done | tee "$O/retrain_epoch.jsonl"

step "2. bench/gpu.sh"
BUDGET=${GPU_BUDGET:-150} bash bench/gpu.sh "$O/gpu_bench.md" > /dev/null 2>> "$LOG"
sed -n '/^| genome/,/^raw rows/p' "$O/gpu_bench.md"

step "3. precision ranking study"
# Channels up to 64 and 10 epochs: 20 genomes x 4 trainings fit a few minutes on an H200.
timeout "${RANK_LIMIT:-150}" $PY bench/precision_rank.py --device cuda --genomes 20 --epochs "${RANK_EPOCHS:-10}" \
  --channels 24,40,64 --precisions fp32,bf16,tf32 --seed-control --out "$O/precision_rank.json" 2>&1 | tail -n 25 | tee -a "$LOG"

step "4. search determinism (digits 100/10 per class, population 6, 2 generations, 2 epochs)"
W=$(mktemp -d)
cat > "$W/params.yaml" <<'YAML'
seed: 2809
data: {dataset: digits, train_per_class: 100, test_per_class: 10}
search: {population: 6, keep: 3, generations: 2, epochs: 2, max_rounds: 1, winners: 2, device: cuda}
YAML
(cd "$W" && $PY -m minigen download > /dev/null && $PY -m minigen sample > /dev/null) 2>> "$LOG"
for run in a b; do
  (cd "$W" && MINIGEN_CACHE_DIR=$W/cache-$run timeout 45 $PY -m minigen search --out "results/$run") 2>> "$LOG"
done
{ for f in history.jsonl winners.json generations.csv; do
    if cmp -s "$W/results/a/$f" "$W/results/b/$f"; then echo "$f identical"; else echo "$f DIFFERS"; fi
  done; cat "$W/results/a/metrics.json"; } 2>&1 | tee "$O/search_determinism.txt"

step "5. op probe and variants"
timeout 30 $PY bench/gpu_op_probe.py 2>> "$LOG" | grep -v '"ok"' >> "$LOG"
timeout 40 $PY bench/gpu_variants.py --epochs 2 2>> "$LOG" | tee "$O/variants.jsonl"
step "done"
