"""Does a precision shortcut keep the fp32 ranking? Kendall's tau over random genomes.

Trains the same seeded random genomes on one mini set in fp32 and in each shortcut
(bf16 autocast; TF32 too on a GPU) with the search's training loop, then compares the
rankings by test accuracy (Kendall's tau-b, ties allowed) and reports the time each
precision took. The search only needs the ranking, so tau is the figure that matters.
`--seed-control` adds fp32 at the next seed: short trainings rank noisily, and that tau
is the yardstick a shortcut's tau should be read against.

    python bench/precision_rank.py --out results/precision_rank.json            # digits
    python bench/precision_rank.py --mini data/mini --epochs 20 --device cuda   # paper

Without `--mini`, the set is scikit-learn's digits upscaled to 32x32 (the embedded
dataset), `--train-per-class` / `--test-per-class` images per class, drawn with the seed.
Genomes are drawn from one seeded stream. With `--out`, the JSON is rewritten after every
genome, so a run stopped by a time limit keeps what it measured.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import kendalltau  # noqa: E402

from minigen import settings as P  # noqa: E402
from minigen.store import atomic  # noqa: E402
from minigen.training import benchmark as B  # noqa: E402
from minigen.training import device as D  # noqa: E402
from minigen.space import genome as G  # noqa: E402
from minigen.model import network  # noqa: E402
from minigen.training import loop as T  # noqa: E402


SEED_CONTROL = "fp32_next_seed"


def digits_mini(train_per_class: int, test_per_class: int, seed: int) -> tuple[T.Split, T.Split]:
    """A stratified mini set from the upscaled digits: disjoint train and test draws."""
    from minigen.stages.download import digits_arrays

    x, y = digits_arrays()
    rng = np.random.default_rng(seed)
    train_rows, test_rows = [], []
    for label in range(10):
        rows = rng.permutation(np.flatnonzero(y == label))
        train_rows.append(rows[:train_per_class])
        test_rows.append(rows[train_per_class : train_per_class + test_per_class])

    def split(rows: list[np.ndarray]) -> T.Split:
        index = np.sort(np.concatenate(rows))
        return T.Split(torch.from_numpy(x[index]), torch.from_numpy(y[index]))

    return split(train_rows), split(test_rows)


def load_data(args) -> tuple[T.Split, T.Split, str]:
    if args.mini:
        from minigen.data import mini

        loaded = mini.load(args.mini)
        return loaded.train, loaded.test, f"mini set {args.mini} (sha256 {loaded.sha256[:12]})"
    train, test = digits_mini(args.train_per_class, args.test_per_class, args.seed)
    return train, test, f"digits 32x32, {args.train_per_class}/{args.test_per_class} per class"


def draw_genomes(count: int, space: G.Space, seed: int) -> list:
    rng = random.Random(seed)
    return [G.random_genome(rng, space) for _ in range(count)]


def rank_study(genomes: list, train: T.Split, test: T.Split, variants: list[tuple[str, str, int]],
               recipe: T.Recipe, device: torch.device, on_row=lambda rows: None) -> list[dict]:
    """Train every genome once per variant (name, precision, seed); one row per genome.
    `on_row(rows)` runs after each genome, so a run cut short still leaves its rows."""
    rows = []
    for number, genome in enumerate(genomes):
        row = {"genome": genome, "genome_id": G.genome_id(genome), "flops": network.complexity(genome)["flops"]}
        for name, precision, seed in variants:
            started = time.perf_counter()
            try:
                accuracy = T.train_genome(genome, train, test, replace(recipe, precision=precision, seed=seed)).test_accuracy
            except T.TrainingFailed as exc:  # a failed network ranks last, as in the search
                accuracy, row[f"{name}_error"] = 0.0, str(exc)
            B.sync(device)
            row[name] = accuracy
            row[f"{name}_seconds"] = time.perf_counter() - started
        rows.append(row)
        print(f"[{number + 1}/{len(genomes)}] {row['genome_id'][:10]} "
              + "  ".join(f"{n} {row[n]:.3f} ({row[f'{n}_seconds']:.1f}s)" for n, _, _ in variants), file=sys.stderr)
        on_row(rows)
    return rows


def tau(rows: list[dict], a: str, b: str) -> dict:
    if len(rows) < 2:
        return {"tau": None, "p_value": None, "n": len(rows)}
    result = kendalltau([r[a] for r in rows], [r[b] for r in rows])
    value = None if np.isnan(result.statistic) else float(result.statistic)
    return {"tau": value, "p_value": None if value is None else float(result.pvalue), "n": len(rows)}


def summarize(rows: list[dict], names: list[str]) -> dict:
    """Each variant against the first (fp32 at the study's seed)."""
    base = names[0]
    out = {}
    for precision in names[1:]:
        out[precision] = {
            "kendall_tau": tau(rows, base, precision),
            "mean_abs_accuracy_difference": float(np.mean([abs(r[base] - r[precision]) for r in rows])),
            "same_best_genome": max(rows, key=lambda r: r[base])["genome_id"] == max(rows, key=lambda r: r[precision])["genome_id"],
            "speedup": sum(r[f"{base}_seconds"] for r in rows) / sum(r[f"{precision}_seconds"] for r in rows),
        }
    return out


def markdown(result: dict) -> str:
    lines = [f"Precision ranking study: {result['n_genomes']} of {result['genomes_planned']} random genomes "
             f"(channels {result['channels']}), {result['data']}, "
             f"{result['recipe']['epochs']} epochs, batch {result['recipe']['batch_size']}, "
             f"device {result['device']}, torch {result['torch']}", "",
             "| variant | Kendall tau vs fp32 (p-value) | mean abs accuracy difference | same best genome | speed-up vs fp32 |",
             "| --- | --- | --- | --- | --- |"]
    for precision, s in result["summary"].items():
        t = s["kendall_tau"]
        shown = "n/a (constant ranking)" if t["tau"] is None else f"{t['tau']:.3f} (p={t['p_value']:.2g})"
        lines.append(f"| {precision} | {shown} | {s['mean_abs_accuracy_difference']:.3f} | "
                     f"{'yes' if s['same_best_genome'] else 'no'} | {s['speedup']:.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Kendall's tau between the fp32 ranking of random genomes and "
                                     "their ranking under bf16 autocast (and TF32 on a GPU).")
    parser.add_argument("--mini", default=None, help="a frozen mini set folder (default: digits, drawn here)")
    parser.add_argument("--genomes", type=int, default=20, help="random genomes (default: 20)")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (default: 20, the paper)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--channels", default="24,40,64,80,128,256", help="space.channels, comma-separated")
    parser.add_argument("--train-per-class", type=int, default=100)
    parser.add_argument("--test-per-class", type=int, default=10)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--precisions", default=None, help="comma-separated, fp32 first (default: fp32,bf16 and tf32 on a GPU)")
    parser.add_argument("--seed-control", action="store_true",
                        help="also train fp32 with seed+1: the tau that seed noise alone gives, to read the others against")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=P.PAPER.seed)
    parser.add_argument("--out", default=None, help="also write the JSON result here")
    args = parser.parse_args(argv)

    device = D.resolve(args.device)
    precisions = (args.precisions or ("fp32,bf16,tf32" if device.type == "cuda" else "fp32,bf16")).split(",")
    if precisions[0] != "fp32" or len(precisions) < 2:
        parser.error("--precisions must start with fp32 and name at least one shortcut")
    if args.threads:
        torch.set_num_threads(args.threads)
    space = G.Space(channels=tuple(int(c) for c in args.channels.split(",")))
    genomes = draw_genomes(args.genomes, space, args.seed)
    train, test, data = load_data(args)
    train, test = train.to(device), test.to(device)
    recipe = T.Recipe(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
    variants = [(p, p, args.seed) for p in precisions]
    if args.seed_control:
        variants.append((SEED_CONTROL, "fp32", args.seed + 1))
    started = time.perf_counter()

    def result_of(rows: list[dict]) -> dict:
        return {
            "n_genomes": len(rows), "genomes_planned": len(genomes), "data": data,
            "channels": list(space.channels), "recipe": recipe.as_dict(), "precisions": precisions,
            "device": B.device_name(device), "torch": torch.__version__, "seconds": time.perf_counter() - started,
            "summary": summarize(rows, [name for name, _, _ in variants]), "genomes": rows,
        }

    def save(rows: list[dict]) -> None:  # after every genome: a run killed by a time limit keeps its rows
        if args.out:
            atomic.write_json(args.out, result_of(rows))

    result = result_of(rank_study(genomes, train, test, variants, recipe, device, on_row=save))
    save(result["genomes"])
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
