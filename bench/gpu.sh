#!/usr/bin/env bash
# GPU speed in one go (budget: under 8 minutes): the published genomes 1 and 3 at the
# paper's settings (1000 images x 20 epochs, batch 64), fp32 and bf16, one evaluation
# alone and four at once (four `minigen bench eval` processes started together on the
# same GPU), and what that makes a 15-network generation cost. Prints a markdown table;
# everything printed also goes to the report file.
#
#   bench/gpu.sh [REPORT.md]      # default: $OUT/gpu_bench.md when OUT is set, else ./gpu_bench.md
#   env: PYTHON=python3  BUDGET=450 (s for all measurements)  IMAGES=1000  EPOCHS=20
#        PRECISIONS="fp32 bf16" (the rows to measure)
#        DEVICE=cuda (cpu only to smoke-test the script itself)
#
# Needs no install: it runs the checkout with PYTHONPATH set, on the machine's own torch.
# (One-epoch retrain timing is bench/retrain_epoch.py's job, not this script's.)
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
if [ $# -ge 1 ]; then REPORT=$1; elif [ -n "${OUT:-}" ]; then REPORT=$OUT/gpu_bench.md; else REPORT=$ROOT/gpu_bench.md; fi
mkdir -p "$(dirname "$REPORT")"
PYTHON=${PYTHON:-python3}
BUDGET=${BUDGET:-450}
IMAGES=${IMAGES:-1000}
EPOCHS=${EPOCHS:-20}
DEVICE=${DEVICE:-cuda}
PRECISIONS=${PRECISIONS:-fp32 bf16}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export MINIGEN_CACHE_DIR=${MINIGEN_CACHE_DIR:-$(mktemp -d -t minigen-cache.XXXXXX)}
WORK=$(mktemp -d -t minigen-gpu-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
exec > >(tee "$REPORT") 2>&1  # everything printed also lands in the report

echo "# minigen GPU benchmark"
echo
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), host: $(hostname), commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo
echo '```'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || echo "nvidia-smi unavailable"
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())" 2>&1
echo '```'
# The full CLI needs the pipeline's dependencies (pyyaml, numpy, ...); the bench itself only
# torch, so a bare machine runs the same command through its own module.
BENCH=(-m minigen bench)
if ! "$PYTHON" -m minigen bench eval --help > "$WORK/help.txt" 2>&1; then
  echo "note: \`minigen\` CLI does not start here ($(tail -n 1 "$WORK/help.txt")); using python -m minigen.commands.bench"
  BENCH=(-m minigen.commands.bench bench)
  if ! "$PYTHON" "${BENCH[@]}" eval --help > "$WORK/help.txt" 2>&1; then
    echo "minigen bench eval does not start here:"; cat "$WORK/help.txt"; exit 1
  fi
fi

for g in 1 3; do
  "$PYTHON" -c "import json, sys; json.dump(json.load(open('minigen/resources/published_genomes.json'))['genomes'][$g]['genome'], sys.stdout)" > "$WORK/genome_$g.json"
done

RESULTS=$WORK/results.jsonl
: > "$RESULTS"

measure() {  # measure GENOME PRECISION CONCURRENT LIMIT_S
  local g=$1 prec=$2 n=$3 limit=$4 left i start end pids=()
  case " $PRECISIONS " in *" $prec "*) ;; *) return ;; esac
  left=$((BUDGET - SECONDS))
  if [ "$left" -lt 30 ]; then
    echo "skipped genome $g $prec x$n: time budget spent" >&2
    echo "{\"genome\": $g, \"precision\": \"$prec\", \"concurrent\": $n, \"skipped\": true}" >> "$RESULTS"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  start=$(date +%s.%N)
  for i in $(seq 1 "$n"); do
    timeout "$limit" "$PYTHON" "${BENCH[@]}" eval --genome "$WORK/genome_$g.json" --train-images "$IMAGES" \
      --epochs "$EPOCHS" --batch-size 64 --device "$DEVICE" --precision "$prec" --json \
      > "$WORK/run_${g}_${prec}_${n}_$i.json" 2> "$WORK/run_${g}_${prec}_${n}_$i.err" &
    pids+=($!)
  done
  wait "${pids[@]}"  # these runs only: a bare `wait` would also wait for the tee below
  end=$(date +%s.%N)
  "$PYTHON" - "$g" "$prec" "$n" "$start" "$end" "$limit" "$WORK" >> "$RESULTS" <<'PY'
import json, pathlib, statistics, sys
g, prec, n, start, end, limit, work = sys.argv[1:]
runs, errors = [], []
for i in range(1, int(n) + 1):
    path = pathlib.Path(work, f"run_{g}_{prec}_{n}_{i}.json")
    try:
        runs.append(json.loads(path.read_text()))
    except (OSError, ValueError):
        err = pathlib.Path(work, f"run_{g}_{prec}_{n}_{i}.err").read_text().strip().splitlines()
        errors.append(err[-1] if err else f"no output (timeout {limit}s?)")
row = {"genome": int(g), "precision": prec, "concurrent": int(n), "finished": len(runs),
       "process_wall": float(end) - float(start), "errors": errors}
if runs:
    row.update(
        per_eval=statistics.median(r["seconds"] for r in runs),
        timed_span=max(r["finished_at"] for r in runs) - min(r["started_at"] for r in runs),
        images=sum(r["train_images"] * r["epochs"] for r in runs),
        flops=sum(3 * r["forward_flops_per_image"] * r["train_images"] * r["epochs"] for r in runs),
        accuracy=[r["test_accuracy"] for r in runs], warmup=statistics.median(r["warmup_seconds"] for r in runs),
        peak_gpu_mb=max(r.get("peak_gpu_mb", 0) for r in runs), peak_host_mb=max(r["peak_host_mb"] for r in runs),
        device=runs[0]["device"], torch=runs[0]["torch"],
    )
print(json.dumps(row))
PY
  tail -n 1 "$RESULTS" >&2
}

# Most telling first, so a short budget still answers the targets (genome 1).
measure 1 fp32 1 120
measure 1 bf16 1 120
measure 1 fp32 4 180
measure 1 bf16 4 180
measure 3 fp32 1 150
measure 3 bf16 1 120
measure 3 bf16 4 200
measure 3 fp32 4 240

"$PYTHON" - "$RESULTS" "$IMAGES" "$EPOCHS" <<'PY'
import json, math, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
images, epochs = sys.argv[2], sys.argv[3]
done = [r for r in rows if r.get("finished")]
if done:
    print(f"\nGPU: {done[0]['device']}, torch {done[0]['torch']}; {images} random images x {epochs} epochs, batch 64, "
          "test on 100; per-eval = in-process training seconds (warm-up excluded), median over the concurrent runs\n")
print("| genome | precision | at once | finished | per eval (s) | span of the timed runs (s) | wall incl. start-up (s) | images/s, all | GFLOP/s, all | peak GPU MiB (one) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for r in rows:
    if r.get("skipped"):
        print(f"| {r['genome']} | {r['precision']} | {r['concurrent']} | skipped (time budget) | | | | | | |")
    elif not r["finished"]:
        print(f"| {r['genome']} | {r['precision']} | {r['concurrent']} | 0/{r['concurrent']}: {'; '.join(r['errors'])[:80]} | | | | | | |")
    else:
        span = r["timed_span"]
        print(f"| {r['genome']} | {r['precision']} | {r['concurrent']} | {r['finished']}/{r['concurrent']} | {r['per_eval']:.2f} | "
              f"{span:.2f} | {r['process_wall']:.1f} | {r['images'] / span:.0f} | {r['flops'] / span / 1e9:.0f} | {r['peak_gpu_mb']:.0f} |")
print("\n15-network generation, estimated from these runs (one worker: 15 x per eval; four at once: "
      "15 x span / 4, i.e. the four-at-once throughput kept up for 15 networks of this genome's size):\n")
print("| genome | precision | one worker (s) | four at once (s) |")
print("| --- | --- | --- | --- |")
for g in sorted({r["genome"] for r in done}):
    for prec in ("fp32", "bf16"):
        one = next((r for r in done if r["genome"] == g and r["precision"] == prec and r["concurrent"] == 1), None)
        four = next((r for r in done if r["genome"] == g and r["precision"] == prec and r["concurrent"] == 4 and r["finished"] == 4), None)
        if one or four:
            a = f"{15 * one['per_eval']:.1f}" if one else "n/a"
            b = f"{15 * four['timed_span'] / 4:.1f}" if four else "n/a"
            print(f"| {g} | {prec} | {a} | {b} |")
print("\nraw rows:\n\n```")
for r in rows:
    print(json.dumps(r))
print("```")
PY
echo
echo "total script time: ${SECONDS}s; report: $REPORT"
