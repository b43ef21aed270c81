#!/usr/bin/env bash
# CPU speed: the authors' training loop (bench/original_loop.py) against `minigen bench
# eval`, both as whole processes, alternating run by run so load drifts hit both alike.
# Published genomes 0 and 1, 200 random images x 2 epochs, fp32, torch's default threads.
#
#   bench/cpu.sh [RESULTS.jsonl]          # env: RUNS=3 GENOMES="0 1" IMAGES=200 EPOCHS=2
#                                         #      THREADS=N (OMP_NUM_THREADS for both loops)
#                                         #      PYTHON=.venv/bin/python  TIMEOUT=1200 (s per run)
# Prints a markdown table of medians: process wall time (start-up and imports included)
# and the in-process training seconds (build + train + score, no warm-up), and the ratios.
set -u
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
GENOMES=${GENOMES:-"0 1"}
IMAGES=${IMAGES:-200}
EPOCHS=${EPOCHS:-2}
TIMEOUT=${TIMEOUT:-1200}
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
[ -n "${THREADS:-}" ] && export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
RESULTS=${1:-$(mktemp -t minigen-cpu-bench.XXXXXX.jsonl)}
WORK=$(mktemp -d -t minigen-cpu-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
: > "$RESULTS"

for g in $GENOMES; do
  "$PYTHON" -c "import json, sys; json.dump(json.load(open('minigen/resources/published_genomes.json'))['genomes'][$g]['genome'], sys.stdout)" > "$WORK/genome_$g.json"
done

measure() {  # measure LOOP GENOME RUN: one whole process, one JSON line appended to $RESULTS
  local loop=$1 g=$2 run=$3 start end rc
  local args=(--genome "$WORK/genome_$g.json" --train-images "$IMAGES" --epochs "$EPOCHS" --json)
  start=$(date +%s.%N)
  if [ "$loop" = original ]; then
    timeout "$TIMEOUT" "$PYTHON" bench/original_loop.py "${args[@]}" > "$WORK/out.json"
  else
    timeout "$TIMEOUT" "$PYTHON" -m minigen bench eval --device cpu --no-warmup "${args[@]}" > "$WORK/out.json"
  fi
  rc=$?
  end=$(date +%s.%N)
  "$PYTHON" - "$loop" "$g" "$run" "$start" "$end" "$rc" "$WORK/out.json" >> "$RESULTS" <<'PY'
import json, sys
loop, g, run, start, end, rc, path = sys.argv[1:]
try:
    out = json.load(open(path))
except (OSError, ValueError):
    out = {}
print(json.dumps({"loop": loop, "genome": int(g), "run": int(run), "rc": int(rc),
                  "process_seconds": float(end) - float(start), "train_seconds": out.get("seconds"),
                  "gflops": out.get("gflops"), "device": out.get("device"), "torch": out.get("torch")}))
PY
  tail -n 1 "$RESULTS" >&2
}

for run in $(seq 1 "$RUNS"); do
  for g in $GENOMES; do
    # Alternate which loop goes first, so neither always gets the quieter slot.
    if [ $((run % 2)) -eq 1 ]; then order="original minigen"; else order="minigen original"; fi
    for loop in $order; do measure "$loop" "$g" "$run"; done
  done
done

"$PYTHON" - "$RESULTS" "$IMAGES" "$EPOCHS" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
images, epochs = sys.argv[2], sys.argv[3]
ok = [r for r in rows if r["rc"] == 0 and r["train_seconds"] is not None]
device = next((r["device"] for r in ok), "?")
torch_version = next((r["torch"] for r in ok), "?")
print(f"\nCPU: {device}, torch {torch_version}, {images} images x {epochs} epochs, fp32, "
      f"batch 64; medians of the runs that finished\n")
print("| genome | loop | runs | process wall (s) | train (s) | GFLOP/s |")
print("| --- | --- | --- | --- | --- | --- |")
ratios = []
for g in sorted({r["genome"] for r in rows}):
    med = {}
    for loop in ("original", "minigen"):
        mine = [r for r in ok if r["genome"] == g and r["loop"] == loop]
        tried = sum(1 for r in rows if r["genome"] == g and r["loop"] == loop)
        if not mine:
            print(f"| {g} | {loop} | 0/{tried} | failed | failed | |")
            continue
        med[loop] = (statistics.median(r["process_seconds"] for r in mine), statistics.median(r["train_seconds"] for r in mine))
        gflops = statistics.median(r["gflops"] for r in mine)
        print(f"| {g} | {loop} | {len(mine)}/{tried} | {med[loop][0]:.1f} | {med[loop][1]:.1f} | {gflops:.1f} |")
    if len(med) == 2:
        ratios.append((g, med["original"][0] / med["minigen"][0], med["original"][1] / med["minigen"][1]))
print()
for g, process, train in ratios:
    print(f"genome {g}: minigen is {process:.2f}x faster as a process, {train:.2f}x in training (original / minigen, medians)")
PY
echo "raw runs: $RESULTS" >&2
