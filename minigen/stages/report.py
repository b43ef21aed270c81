"""The `report` stage: the paper's Table III, its Fig. 4 and the summary metrics.

Reads the search's `generations.csv`, the collected genomes (their mini-set accuracy) and
every retrained genome i < `collect.top_k`, once per seed of `retrain.seeds`, and writes
`results/report/`:

- `table.md`, `table.html`, `table.csv`: Table III's columns (index = order found, test
  accuracy, true parameters, FLOPs, accuracy-to-parameter ratio on the true and on twice
  the true count) plus the accuracy on the test images the search never saw, the number
  of seeds and the mini-set accuracy, sorted by the true-count ratio, descending; for a
  genome the paper published, its accuracy, parameter figure and ratio beside ours. With
  several seeds, accuracies are means, with their sample standard deviation, and the
  ratios use the mean. The HTML is for Snakemake's report.
- `fig4_generations.png`, `search_curve.png`, `mini_vs_full.png`, `retrain_curves.png`
  (see `figures`), and `mini_vs_full.csv`, the data of `mini_vs_full.png` for `dvc plots`.
- `metrics.json`: mean and best test accuracy (all images and unseen ones), the best's
  parameters, and Kendall's tau between mini-set and full test accuracy, means over
  seeds (does the mini set rank architectures as the full set does?).
- `best_model.safetensors`: the weights of the genome with the best mean test accuracy,
  retrained with the first of `retrain.seeds` (the DVC `best-model` artifact): the first
  seed, not the luckiest, so the test set picks no seed.

The ratio is the paper's formula: accuracy as a fraction over parameters in millions
(Table III lists 74.7 % at 0.9 M as 0.83). The paper's parameter figures are about twice
the true counts, so its ratios compare with ours on twice the true count, not the true one.
"""

from __future__ import annotations

import html
import math
import statistics
import textwrap
import warnings
from pathlib import Path
from typing import Callable

from minigen import log as messages
from minigen import settings as P
from minigen.store import atomic
from minigen.reporting import checklist, figures
from minigen.reporting import paper_facts
from minigen.space import records
from minigen.store import formats, provenance
from minigen.errors import UserError

TABLE_COLUMNS = (
    "index", "genome_id", "source", "seeds", "test_accuracy", "test_accuracy_std", "clean_test_accuracy",
    "clean_test_accuracy_std", "params", "flops", "ratio_true_params", "ratio_doubled_params",
    "mini_accuracy", "paper_index", "paper_accuracy", "paper_params_millions", "paper_ratio",
)
METRICS_KEYS = ("genome_id", "seed", "test_accuracy", "clean_test_accuracy", "clean_test_images", "params", "flops",
                "epochs", "recipe")
WEIGHTS = formats.WEIGHTS
BEST_MODEL = "best_model.safetensors"
FIGURES = {
    "fig4_generations.png": figures.draw_fig4,
    "search_curve.png": figures.draw_search_curve,
    "mini_vs_full.png": figures.draw_mini_vs_full,
    "retrain_curves.png": figures.draw_curves,
}
MINI_VS_FULL_COLUMNS = ("index", "mini_accuracy", "test_accuracy")


def ratio(test_accuracy: float, params: int) -> float:
    """Table III's Acc-to-Param Ratio: accuracy (a fraction) per million parameters. Ours
    divides by the true count; the paper divided by its summary tool's count, about twice
    the true one, so `ratio(acc, 2 * params)` is the one to set beside the paper's."""
    return test_accuracy / (params / 1e6)


# ---------------------------------------------------------------- reading


def read_generations(search_dir: str | Path) -> list[dict]:
    path = Path(search_dir) / "generations.csv"
    rows = formats.read_csv(path, formats.GENERATION_COLUMNS, "search history (run `minigen search` first)")
    try:
        return [{"round": int(r["round"]), "generation": int(r["generation"]),
                 "best_accuracy": float(r["best_accuracy"]), "best_born": int(r["best_born"]),
                 "mean_accuracy": float(r["mean_accuracy"])} for r in rows]
    except (TypeError, ValueError):
        raise UserError(f"{path} is malformed: non-numeric round, generation, best_accuracy, best_born "
                        "or mean_accuracy") from None


def _is_accuracy(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0


def read_retrained(retrain_dir: str | Path, index: int, seed: int, genome_id: str) -> dict:
    """The metrics, curve and cost (what the run took; {} if it has no cost.json) of genome
    `index`'s retrain with `seed`, checked against the genome: every reader of a retrain's
    folder reads it here, once."""
    folder = formats.retrain_dir(retrain_dir, index, seed)
    again = f"run `minigen retrain {index} {seed}`"
    if not folder.is_dir():
        raise UserError(f"retrained genome folder {folder} is missing ({again})")
    if not (folder / WEIGHTS).is_file():
        raise UserError(f"{folder} is incomplete: {WEIGHTS} is missing ({again} again)")
    metrics = atomic.read_json(folder / "metrics.json", "retrain metrics")
    if not isinstance(metrics, dict) or any(key not in metrics for key in METRICS_KEYS):
        raise UserError(f"{folder / 'metrics.json'} is malformed: it needs {', '.join(METRICS_KEYS)} ({again} again)")
    for key in ("test_accuracy", "clean_test_accuracy"):
        value = metrics[key]
        if not _is_accuracy(value) and not (key == "clean_test_accuracy" and value is None):
            raise UserError(f"{folder / 'metrics.json'} is malformed: {key} {value!r} is not in [0, 1]")
    if metrics["genome_id"] != genome_id or metrics["seed"] != seed:
        raise UserError(f"{folder} holds genome {metrics['genome_id']} with seed {metrics['seed']!r}, but "
                        f"genome_{index}.json is {genome_id} and the folder is seed {seed} ({again} again)")
    rows = formats.read_csv(folder / "curve.csv", formats.CURVE_COLUMNS, "retrain curve")
    try:
        curve = [{"epoch": int(r["epoch"]), **{k: float(r[k]) for k in formats.CURVE_COLUMNS[1:]}} for r in rows]
    except (TypeError, ValueError):
        raise UserError(f"{folder / 'curve.csv'} is malformed: non-numeric values") from None
    cost = atomic.read_json(folder / formats.COST_FILE, "retrain cost") if (folder / formats.COST_FILE).is_file() else {}
    return {**metrics, "curve": curve, "cost": cost if isinstance(cost, dict) else {}}


def spread(values: list[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None with one value); (None, None) if any is None."""
    if any(value is None for value in values):
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def load_entries(top_k: int, seeds: list[int], genomes_dir: str | Path, retrain_dir: str | Path) -> list[dict]:
    """One entry per genome i < top_k: its collect record joined with its retrains, one per seed."""
    entries = []
    for index in range(top_k):
        record = records.load_record(genomes_dir, index)
        runs = [read_retrained(retrain_dir, index, seed, record["genome_id"]) for seed in seeds]
        mini = record["search"].get("accuracy")
        test_mean, test_std = spread([float(run["test_accuracy"]) for run in runs])
        clean_mean, clean_std = spread([run["clean_test_accuracy"] for run in runs])
        entries.append({
            "index": index,
            "genome_id": record["genome_id"],
            "source": record.get("source"),
            "mini_accuracy": float(mini) if isinstance(mini, (int, float)) else None,
            "seeds": len(runs),
            "test_accuracy": test_mean,
            "test_accuracy_std": test_std,
            "clean_test_accuracy": clean_mean,
            "clean_test_accuracy_std": clean_std,
            "params": int(runs[0]["params"]),
            "flops": int(runs[0]["flops"]),
            "epochs": runs[0]["epochs"],
            "recipe": runs[0]["recipe"],
            "test_images": runs[0].get("test_images"),
            "clean_test_images": runs[0]["clean_test_images"],
            "curves": [run["curve"] for run in runs],
            "runs": runs,
        })
    return entries


# ---------------------------------------------------------------- table and metrics


def table_rows(entries: list[dict]) -> list[dict]:
    """Table III's rows, sorted by the ratio, descending (ties: index order)."""
    rows = []
    for e in entries:
        published = paper_facts.by_genome_id(e["genome_id"])
        rows.append({
            "index": e["index"],
            "genome_id": e["genome_id"],
            "source": e["source"],
            **{key: e[key] for key in ("seeds", "test_accuracy", "test_accuracy_std", "clean_test_accuracy",
                                       "clean_test_accuracy_std")},
            "params": e["params"],
            "flops": e["flops"],
            "ratio_true_params": ratio(e["test_accuracy"], e["params"]),
            "ratio_doubled_params": ratio(e["test_accuracy"], 2 * e["params"]),
            "mini_accuracy": e["mini_accuracy"],
            "paper_index": published["index"] if published else None,
            "paper_accuracy": published["paper_accuracy_percent"] / 100.0 if published else None,
            "paper_params_millions": published["paper_parameters_millions"] if published else None,
            "paper_ratio": paper_facts.paper_ratio(published) if published else None,
        })
    return sorted(rows, key=lambda r: (-r["ratio_true_params"], r["index"]))


def table_csv(rows: list[dict]) -> str:
    return formats.csv_text(rows, TABLE_COLUMNS)


def _percent(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f}%"


def _millions(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value / 1e6:.{digits}f}M"


def _mean_std(mean: float | None, std: float | None) -> str:
    """A percentage, with ± the standard deviation in percentage points when there is one."""
    return _percent(mean, 2) if std is None or mean is None else f"{_percent(mean, 2)} ± {100 * std:.2f}"


TABLE_HEADER = ("Index", "Acc.", "Acc. unseen", "Seeds", "Parameters", "FLOPs", "Ratio (true params)",
                "Ratio (2x params)", "Mini acc.", "Paper index", "Paper acc.", "Paper parameters", "Paper ratio")


def table_cells(rows: list[dict]) -> list[list[str]]:
    """Each row's cells as the table shows them, in TABLE_HEADER's order."""
    cells = []
    for r in rows:
        if r["paper_index"] is None:
            paper = ["—"] * 4
        else:
            paper = [str(r["paper_index"]), _percent(r["paper_accuracy"]), f"{r['paper_params_millions']}M",
                     f"{r['paper_ratio']:.2f}"]
        ours = [str(r["index"]), _mean_std(r["test_accuracy"], r["test_accuracy_std"]),
                _mean_std(r["clean_test_accuracy"], r["clean_test_accuracy_std"]), str(r["seeds"]),
                f"{_millions(r['params'])} ({r['params']:,})",
                _millions(r["flops"], 1), f"{r['ratio_true_params']:.2f}", f"{r['ratio_doubled_params']:.2f}",
                _percent(r["mini_accuracy"])]
        cells.append(ours + paper)
    return cells


def table_notes(entries: list[dict]) -> list[str]:
    """The lines under the table's title: how it was made and how to read it."""
    recipes = sorted({f"{e['recipe']} recipe, {e['epochs']} epochs" for e in entries})
    images = sorted({e["test_images"] for e in entries if e.get("test_images")})
    unseen = sorted({e["clean_test_images"] for e in entries})
    seeds = sorted({e["seeds"] for e in entries})
    spread_note = (f"Each genome was retrained with {', '.join(map(str, seeds))} seeds: accuracies are means, "
                   "± the sample standard deviation over seeds in percentage points, and the ratios use the "
                   "means." if seeds != [1] else "Each genome was retrained once (one seed), as in the paper, "
                   "so the table shows no spread: `retrain.seeds` with several seeds gives mean ± std.")
    text = (
        f"Retrained with the {'; '.join(recipes)}. "
        + (f"Acc. is on all {', '.join(f'{n:,}' for n in images)} test images, as in the paper; " if images else "")
        + f"Acc. unseen on the {', '.join(f'{n:,}' for n in unseen)} the search never saw: the mini set's test "
        f"images chose the genomes, so they are left out. {spread_note} "
        "Parameters are true counts; the paper's figure counted every layer twice. The Acc-to-Param Ratio "
        "is accuracy (a fraction) over parameters in millions: \"Ratio (true params)\" divides by the true "
        "count, and the table is sorted by it; \"Ratio (2x params)\" divides by twice the true count, the "
        "paper's convention, and is the one to compare with the paper's ratio. FLOPs are per 32x32 image, "
        "forward pass, 2 per multiply-add. Mini acc. is the genome's accuracy on the mini test set during "
        "the search. Paper columns: the published genome with the same encoding, if any."
    )
    return textwrap.wrap(text, width=90)


def table_title(rows: list[dict]) -> str:
    return f"Table III, reproduced: {len(rows)} architectures found by MiniGen"


def table_markdown(rows: list[dict], entries: list[dict]) -> str:
    lines = [f"# {table_title(rows)}", "", *table_notes(entries), "",
             "| " + " | ".join(TABLE_HEADER) + " |", "|---:" * len(TABLE_HEADER) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_cells(rows)]
    return "\n".join(lines) + "\n"


def table_html(rows: list[dict], entries: list[dict]) -> str:
    """The table as a standalone HTML page: Snakemake's report shows HTML, not Markdown."""
    def row(tag: str, cells) -> str:
        return "<tr>" + "".join(f"<{tag}>{html.escape(cell)}</{tag}>" for cell in cells) + "</tr>"

    title = html.escape(table_title(rows))
    body = "\n".join(row("td", cells) for cells in table_cells(rows))
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title>'
            "<style>body{font-family:sans-serif} td,th{padding:2px 8px;text-align:right}"
            " tr:nth-child(even){background:#f2f2f2}</style></head><body>\n"
            f"<h1>{title}</h1>\n<p>{html.escape(' '.join(table_notes(entries)))}</p>\n"
            f"<table>\n{row('th', TABLE_HEADER)}\n{body}\n</table>\n</body></html>\n")


def kendall(mini: list[float], full: list[float]) -> dict:
    """Kendall's tau-b between the two rankings, or null with the reason it is undefined."""
    if len(mini) < 2:
        return {"kendall_tau": None, "kendall_p_value": None,
                "kendall_note": f"undefined: {len(mini)} genome(s) with both accuracies, 2 needed"}
    if len(set(mini)) < 2 or len(set(full)) < 2:
        return {"kendall_tau": None, "kendall_p_value": None,
                "kendall_note": "undefined: the mini or the full accuracies are all equal"}
    from scipy.stats import kendalltau

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = kendalltau(mini, full)
    tau, p_value = float(result.statistic), float(result.pvalue)
    if math.isnan(tau):
        return {"kendall_tau": None, "kendall_p_value": None, "kendall_note": "undefined (NaN from scipy)"}
    return {"kendall_tau": tau, "kendall_p_value": None if math.isnan(p_value) else p_value, "kendall_note": None}


def summary_metrics(entries: list[dict], seeds: list[int]) -> dict:
    """Over genomes, each one's mean over seeds; the best is the best mean test accuracy."""
    best = max(entries, key=lambda e: (e["test_accuracy"], -e["index"]))
    pairs = figures.mini_vs_full_data(entries)
    clean = [e["clean_test_accuracy"] for e in entries]
    return {
        "genomes": len(entries),
        "retrain_seeds": len(seeds),
        "mean_test_accuracy": statistics.fmean(e["test_accuracy"] for e in entries),
        "mean_clean_test_accuracy": None if None in clean else statistics.fmean(clean),
        "best_test_accuracy": best["test_accuracy"],
        "best_test_accuracy_std": best["test_accuracy_std"],
        "best_clean_test_accuracy": best["clean_test_accuracy"],
        "best_index": best["index"],
        "best_seed": seeds[0],
        "best_params": best["params"],
        "kendall_genomes": len(pairs["index"]),
        **kendall(pairs["mini_accuracy"], pairs["test_accuracy"]),
    }


stderr_log = messages.logger("report").info


def report(
    params: dict,
    search_dir: str | Path = "results/search",
    genomes_dir: str | Path = "results/genomes",
    retrain_dir: str | Path = "results/retrain",
    out_dir: str | Path = "results/report",
    log: Callable[[str], None] = stderr_log,
) -> dict:
    """Write the report folder; return its metrics."""
    generations = read_generations(search_dir)
    params = P.validate(params)  # retrain.seeds filled in where left out
    seeds = params["retrain"]["seeds"]
    entries = load_entries(params["collect"]["top_k"], seeds, genomes_dir, retrain_dir)
    rows = table_rows(entries)
    metrics = summary_metrics(entries, seeds)
    if metrics["kendall_note"]:
        log(f"Kendall's tau is null: {metrics['kendall_note']}")
    pairs = figures.mini_vs_full_data(entries)
    data = {
        "fig4_generations.png": figures.fig4_data(generations),
        "search_curve.png": figures.fig4_data(generations),
        "mini_vs_full.png": {**pairs, "kendall_tau": metrics["kendall_tau"]},
        "retrain_curves.png": figures.curves_data(entries),
    }
    pair_rows = [dict(zip(pairs, values)) for values in zip(*pairs.values())]
    with atomic.staged_dir(out_dir) as staging:
        atomic.write_text(staging / "table.md", table_markdown(rows, entries))
        atomic.write_text(staging / "table.html", table_html(rows, entries))
        atomic.write_text(staging / "table.csv", table_csv(rows))
        atomic.write_text(staging / "mini_vs_full.csv", formats.csv_text(pair_rows, MINI_VS_FULL_COLUMNS))
        atomic.write_json(staging / "metrics.json", metrics)
        facts = checklist.gather(params, Path(search_dir), [run for e in entries for run in e["runs"]],
                                 provenance.code_version())
        atomic.write_text(staging / "checklist.md", checklist.render(facts))
        best_weights = formats.retrain_dir(retrain_dir, metrics["best_index"], metrics["best_seed"]) / WEIGHTS
        atomic.write_bytes(staging / BEST_MODEL, best_weights.read_bytes())
        for name, draw in FIGURES.items():
            atomic.write_bytes(staging / name, draw(data[name]))
    return metrics

