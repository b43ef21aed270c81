#!/usr/bin/env bash
# CPU speed: the authors' training loop (bench/original_loop.py) against `minigen bench
# eval`, both as whole processes, alternating run by run so load drifts hit both alike.
# Published genomes 0 and 1, 200 random images x 2 epochs, fp32, torch's default threads;
# plus `minigen-2x1`, two evaluations at once on one thread each, which is how a search
# with `workers: 2` uses 2 cores (CPU evaluations always run on one thread).
#
#   bench/cpu.sh [RESULTS.jsonl]          # env: RUNS=3 GENOMES="0 1" IMAGES=200 EPOCHS=2
#                                         #      THREADS=N (OMP_NUM_THREADS for all loops)
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

measure() {  # measure LOOP GENOME RUN: whole processes, one JSON line appended to $RESULTS
  local loop=$1 g=$2 run=$3 copies=1
  local args=(--genome "$WORK/genome_$g.json" --train-images "$IMAGES" --epochs "$EPOCHS" --json)
  case $loop in
    original) args=(bench/original_loop.py "${args[@]}") ;;
    minigen) args=(-m minigen bench eval --device cpu --no-warmup "${args[@]}") ;;
    # What a search with `workers: 2` does on 2 cores: two evaluations at once, one thread each.
    minigen-2x1) copies=2; args=(-m minigen bench eval --device cpu --no-warmup --threads 1 "${args[@]}") ;;
  esac
  # The children's CPU time (user + sys) is kept beside the wall time: on a shared machine
  # it is the steadier of the two (other processes stretch the wall clock, not CPU time).
  "$PYTHON" - "$loop" "$g" "$run" "$TIMEOUT" "$copies" "$PYTHON" "${args[@]}" >> "$RESULTS" <<'PY'
import json, resource, statistics, subprocess, sys, time
loop, g, run, timeout, copies, *command = sys.argv[1:]
copies = int(copies)
start = time.perf_counter()
procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(copies)]
outs, rcs = [], []
for proc in procs:
    try:
        stdout, _ = proc.communicate(timeout=max(1.0, float(timeout) - (time.perf_counter() - start)))
        rcs.append(proc.returncode)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, _ = proc.communicate()
        rcs.append(124)
    try:
        outs.append(json.loads(stdout))
    except ValueError:
        pass
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
ok = len(outs) == copies and not any(rcs)
print(json.dumps({
    "loop": loop, "genome": int(g), "run": int(run), "rc": max(rcs), "copies": copies,
    # Per evaluation: with several at once, the wall clock is shared among them.
    "process_seconds": wall / copies, "process_cpu_seconds": (usage.ru_utime + usage.ru_stime) / copies,
    "train_seconds": statistics.median(o["seconds"] for o in outs) if ok else None,
    "gflops": sum(o["gflops"] for o in outs) if ok else None,
    "device": outs[0]["device"] if outs else None, "torch": outs[0]["torch"] if outs else None,
}))
PY
  tail -n 1 "$RESULTS" >&2
}

for run in $(seq 1 "$RUNS"); do
  for g in $GENOMES; do
    # Alternate which loop goes first, so neither always gets the quieter slot.
    if [ $((run % 2)) -eq 1 ]; then order="original minigen minigen-2x1"; else order="minigen-2x1 minigen original"; fi
    for loop in $order; do measure "$loop" "$g" "$run"; done
  done
done

"$PYTHON" - "$RESULTS" "$IMAGES" "$EPOCHS" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
images, epochs = sys.argv[2], sys.argv[3]
ok = [r for r in rows if r["rc"] == 0 and r["train_seconds"] is not None]
device = next((r["device"] for r in ok if r["loop"] != "minigen-2x1"), "?")
torch_version = next((r["torch"] for r in ok), "?")
LOOPS = {"original": "original loop", "minigen": "minigen",
         "minigen-2x1": "minigen, 2 at once x 1 thread (per eval)"}
print(f"\nCPU: {device}, torch {torch_version}, {images} images x {epochs} epochs, fp32, batch 64; "
      "medians of the runs that finished; wall and CPU per evaluation (for 2 at once: the pair's / 2)\n")
print("| genome | loop | runs | process wall (s) | process CPU (s) | train (s) | GFLOP/s |")
print("| --- | --- | --- | --- | --- | --- | --- |")
ratios = []
for g in sorted({r["genome"] for r in rows}):
    med = {}
    for loop, label in LOOPS.items():
        mine = [r for r in ok if r["genome"] == g and r["loop"] == loop]
        tried = sum(1 for r in rows if r["genome"] == g and r["loop"] == loop)
        if not tried:
            continue
        if not mine:
            print(f"| {g} | {label} | 0/{tried} | failed | | | |")
            continue
        med[loop] = [statistics.median(r[key] for r in mine) for key in ("process_seconds", "process_cpu_seconds", "train_seconds")]
        gflops = statistics.median(r["gflops"] for r in mine)
        print(f"| {g} | {label} | {len(mine)}/{tried} | {med[loop][0]:.1f} | {med[loop][1]:.1f} | {med[loop][2]:.1f} | {gflops:.1f} |")
    for loop in ("minigen", "minigen-2x1"):
        if "original" in med and loop in med:
            ratios.append((g, LOOPS[loop], med["original"][0] / med[loop][0], med["original"][1] / med[loop][1]))
print()
for g, label, wall, cpu in ratios:
    print(f"genome {g}: original / {label}: {wall:.2f}x process wall, {cpu:.2f}x process CPU (medians)")
PY
echo "raw runs: $RESULTS" >&2
