#!/usr/bin/env bash
# The GPU checks of issues 4, 5 and 7 as one prepared run (about 5 minutes on an H100/H200),
# for a bare GPU machine with its own torch: nothing is installed, the checkout runs with
# PYTHONPATH. Everything lands in $OUT (default ./device_out); BENCHMARKS.md quotes it.
#   1. bench/gpu_variants.py: s/epoch of genome 1 by memory format x precision x determinism
#   2. search determinism: the same small search twice (separate caches) -> identical files
#   3. bench/retrain_epoch.py: one epoch on 50,000 images, paper and modern recipes
#   4. bench/gpu.sh: genomes 1 and 3 at the paper's settings, fp32/bf16, 1 and 4 at once
set -u
cd "$(dirname "$0")/.."
O=${OUT:-$PWD/device_out}
mkdir -p "$O"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
PY=${PYTHON:-python3}
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } > "$O/env.txt" 2>&1
cat "$O/env.txt"

echo "== 1. variants"
timeout 100 $PY bench/gpu_variants.py --epochs 2 > "$O/variants.jsonl" 2> "$O/variants.err"
tail -n 3 "$O/variants.err"; cat "$O/variants.jsonl"

echo "== 2. search determinism (digits 100/10 per class, population 6, 2 generations, 10 epochs)"
W=$(mktemp -d)
cat > "$W/params.yaml" <<'YAML'
seed: 2809
data: {dataset: digits, train_per_class: 100, test_per_class: 10}
search: {population: 6, keep: 3, generations: 2, epochs: 10, max_rounds: 1, winners: 2, device: cuda}
YAML
(cd "$W" && $PY -m minigen download > /dev/null && $PY -m minigen sample > /dev/null) 2> "$O/search.err"
for run in a b; do
  (cd "$W" && MINIGEN_CACHE_DIR=$W/cache-$run timeout 120 $PY -m minigen search --out "results/$run") 2>> "$O/search.err"
done
cp "$W/results/a/metrics.json" "$O/search_metrics.json" 2>/dev/null
cp "$W/results/a/generations.csv" "$O/search_generations.csv" 2>/dev/null
for f in history.jsonl winners.json generations.csv; do
  if cmp -s "$W/results/a/$f" "$W/results/b/$f"; then echo "$f identical"; else echo "$f DIFFERS"; fi
done | tee "$O/search_determinism.txt"
tail -n 5 "$O/search.err"

echo "== 3. retrain epoch"
for r in paper modern; do
  timeout 90 $PY bench/retrain_epoch.py --device cuda --images 50000 --recipe $r 2>> "$O/retrain.err"
done | tee "$O/retrain_epoch.jsonl"
tail -n 3 "$O/retrain.err"

echo "== 4. bench/gpu.sh"
BUDGET=${GPU_BUDGET:-150} bash bench/gpu.sh "$O/gpu_bench.md" > /dev/null 2>&1
cat "$O/gpu_bench.md"
