#!/usr/bin/env bash
# CPU speed: the authors' training loop (bench/original_loop.py) against `minigen bench
# eval`, both as whole processes, alternating run by run so load drifts hit both alike.
# Published genomes 0 and 1, 200 random images x 2 epochs, fp32, torch's default threads.
#
#   bench/cpu.sh [RESULTS.jsonl]          # env: RUNS=3 GENOMES="0 1" IMAGES=200 EPOCHS=2
#                                         #      THREADS=N (OMP_NUM_THREADS for both loops)
#                                         #      PYTHON=.venv/bin/python  TIMEOUT=1200 (s per run)
# Prints a markdown table of medians: process wall time and CPU time (user + sys; start-up
# and imports included), the in-process training seconds (build + train + score, no
# warm-up), and the ratios.
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
  local loop=$1 g=$2 run=$3
  local args=(--genome "$WORK/genome_$g.json" --train-images "$IMAGES" --epochs "$EPOCHS" --json)
  if [ "$loop" = original ]; then
    args=(bench/original_loop.py "${args[@]}")
  else
    args=(-m minigen bench eval --device cpu --no-warmup "${args[@]}")
  fi
  # The child's CPU time (user + sys) is kept beside its wall time: on a shared machine it
  # is the steadier of the two (other processes stretch the wall clock, not the CPU time).
  "$PYTHON" - "$loop" "$g" "$run" "$TIMEOUT" "$PYTHON" "${args[@]}" >> "$RESULTS" <<'PY'
import json, resource, subprocess, sys, time
loop, g, run, timeout, *command = sys.argv[1:]
start = time.perf_counter()
try:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=float(timeout))
    rc, stdout = proc.returncode, proc.stdout
except subprocess.TimeoutExpired:
    rc, stdout = 124, ""
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
try:
    out = json.loads(stdout)
except ValueError:
    out = {}
print(json.dumps({"loop": loop, "genome": int(g), "run": int(run), "rc": rc, "process_seconds": wall,
                  "process_cpu_seconds": usage.ru_utime + usage.ru_stime, "train_seconds": out.get("seconds"),
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
print("| genome | loop | runs | process wall (s) | process CPU (s) | train (s) | GFLOP/s |")
print("| --- | --- | --- | --- | --- | --- | --- |")
ratios = []
for g in sorted({r["genome"] for r in rows}):
    med = {}
    for loop in ("original", "minigen"):
        mine = [r for r in ok if r["genome"] == g and r["loop"] == loop]
        tried = sum(1 for r in rows if r["genome"] == g and r["loop"] == loop)
        if not mine:
            print(f"| {g} | {loop} | 0/{tried} | failed | | | |")
            continue
        med[loop] = [statistics.median(r[key] for r in mine) for key in ("process_seconds", "process_cpu_seconds", "train_seconds")]
        gflops = statistics.median(r["gflops"] for r in mine)
        print(f"| {g} | {loop} | {len(mine)}/{tried} | {med[loop][0]:.1f} | {med[loop][1]:.1f} | {med[loop][2]:.1f} | {gflops:.1f} |")
    if len(med) == 2:
        ratios.append((g, *(a / b for a, b in zip(med["original"], med["minigen"]))))
print()
for g, process, cpu, train in ratios:
    print(f"genome {g}: original / minigen (medians): {process:.2f}x process wall, {cpu:.2f}x process CPU, {train:.2f}x training")
PY
echo "raw runs: $RESULTS" >&2
