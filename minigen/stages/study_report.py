"""The study's report: every arm against the reference arm, over seeds.

Reads each arm x seed's folder (`stages/study.py`) and writes `results/study/report/`:

- `table.md`, `table.csv`: per arm, mean ± std over seeds of the best mini-set accuracy,
  the full test accuracy of the best genome's retrain and the last generation at which the
  best individual changed; each with the p-value of a two-sided Mann-Whitney U test against
  the reference (`reporting.study_stats`: a sentence when the seeds are too few to tell);
  networks evaluated per search, networks trained, device-hours.
- `runs.csv` (one row per arm x seed), `curves.csv` (per arm and generation, mean ± std of
  the best accuracy and of the best individual's birth generation);
- `fig3_generations.png` (the paper's Fig. 3: its green and red lines, one band per arm),
  `accuracy_by_arm.png`; `metrics.json` (per arm, for `dvc exp show`).

Fig. 3's claim is about one round ("trapped in generation 3" without decay, "kept evolving
until generation 11" with it), so its curves and the last change are read in round 0.
"""

from __future__ import annotations

import json
from pathlib import Path

from minigen import log as messages
from minigen import settings as P
from minigen.errors import UserError
from minigen.reporting import study_figures, study_stats
from minigen.space import evolution as E
from minigen.space import records
from minigen.stages import report as pipeline_report
from minigen.store import atomic, formats

log = messages.logger("study").info
RUN_COLUMNS = ("arm", "seed", "genome_id", "best_mini_accuracy", "test_accuracy", "clean_test_accuracy", "last_change",
               "generations", "evaluations", "trained", "search_seconds", "retrain_seconds", "device")
COMPARED = {"best_mini_accuracy": "best mini-set accuracy", "test_accuracy": "full test accuracy",
            "last_change": "last change of the best"}
TABLE_COLUMNS = ("arm", "seeds", *(f"{key}_{part}" for key in COMPARED for part in ("mean", "std", "p")),
                 "evaluations_mean", "trained", "device_hours")
CURVE_COLUMNS = ("arm", "generation", "seeds", "best_accuracy_mean", "best_accuracy_std", "best_born_mean",
                 "best_born_std")


# ---------------------------------------------------------------- reading


def read_results(folder: Path, what: str) -> dict:
    """A stage's metrics.json, with its cost.json (what the run took) when there is one."""
    results = atomic.read_json(folder / "metrics.json", what)
    if (folder / formats.COST_FILE).is_file():
        results = {**results, **atomic.read_json(folder / formats.COST_FILE, what)}
    return results


def best_ids(history_path: Path) -> list[str]:
    """The genome id of each round-0 generation's best, in order (`E.best_of_generation`)."""
    generations: dict[int, list[dict]] = {}
    try:
        for line in history_path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record["round"] == 0:
                generations.setdefault(record["generation"], []).append(record)
        return [members[E.best_of_generation([m["accuracy"] for m in members], [m["fitness"] for m in members])]
                ["genome_id"] for _, members in sorted(generations.items())]
    except FileNotFoundError:
        raise UserError(f"search history not found: {history_path} (run the arm's search)") from None
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{history_path} is malformed: not the history a search writes") from None


def last_change(ids: list[str]) -> int:
    """The last generation whose best individual differs from the previous one's (0: none)."""
    return max((g for g in range(1, len(ids)) if ids[g] != ids[g - 1]), default=0)


def read_run(arms_root: Path, arm: str, seed: int) -> dict:
    folder = formats.study_run_dir(arms_root, arm, seed)
    search = read_results(folder / "search", "search results")
    curve = [row for row in pipeline_report.read_generations(folder / "search") if row["round"] == 0]
    record = records.load_record(folder / "genomes", 0)
    retrained = pipeline_report.read_retrained(folder / "retrain", 0, seed, record["genome_id"])
    cost = retrained["cost"]
    devices = {str((search.get("placement") or {}).get("device", "cpu")).split(":")[0],
               str(retrained.get("device_kind", cost.get("device_kind", "cpu"))).split(":")[0]}
    return {
        "arm": arm, "seed": seed, "genome_id": record["genome_id"],
        "best_mini_accuracy": float(record["search"]["accuracy"]),
        "test_accuracy": float(retrained["test_accuracy"]),
        "clean_test_accuracy": retrained["clean_test_accuracy"],
        "last_change": last_change(best_ids(folder / "search" / "history.jsonl")),
        "generations": len(curve), "curve": curve,
        "evaluations": search.get("evaluations"), "trained": search.get("trained"),
        "search_seconds": search.get("seconds"), "retrain_seconds": cost.get("seconds"),
        "device": "+".join(sorted(devices)),
    }


# ---------------------------------------------------------------- summaries


def summarise(study: P.Study, runs: dict[str, list[dict]]) -> list[dict]:
    """One row per arm: means, stds and p-values against the reference, and the cost."""
    reference = runs[study.reference]
    rows = []
    for arm, arm_runs in runs.items():
        row = {"arm": arm, "seeds": len(arm_runs), "tests": {}}
        for key in COMPARED:
            values = [r[key] for r in arm_runs]
            row[f"{key}_mean"], row[f"{key}_std"] = study_stats.mean_std(values)
            test = None if arm == study.reference else study_stats.rank_test(values, [r[key] for r in reference])
            row[f"{key}_p"] = test and test["p_value"]
            row["tests"][key] = test
        row["evaluations_mean"] = study_stats.mean_std([r["evaluations"] or 0 for r in arm_runs])[0]
        row["trained"] = sum(r["trained"] or 0 for r in arm_runs)
        row["device_hours"] = sum((r["search_seconds"] or 0) + (r["retrain_seconds"] or 0) for r in arm_runs) / 3600
        rows.append(row)
    return rows


def _cell(mean: float | None, std: float | None, percent: bool) -> str:
    if mean is None:
        return "—"
    scale, unit, digits = (100, " %", 1) if percent else (1, "", 1)
    return f"{scale * mean:.{digits}f}{'' if std is None else f' ± {scale * std:.{digits}f}'}{unit}"


def table_markdown(study: P.Study, rows: list[dict], runs: dict[str, list[dict]]) -> str:
    devices = sorted({r["device"] for arm_runs in runs.values() for r in arm_runs})
    hours = "GPU-hours" if all(d == "cuda" for d in devices) else f"Device-hours ({', '.join(devices)})"
    lines = [
        f"# The study: {len(rows)} arms x {len(study.seeds)} seeds, against `{study.reference}`", "",
        "Each arm x seed: a search on the mini set, then its best genome (by mini-set accuracy) retrained "
        f"for {study.retrain_epochs} epochs on the full training set and tested on the full test set. "
        "Mean ± std (sample std) over seeds; p: two-sided Mann-Whitney U test of the arm's seeds against "
        "the reference's. Last change: the last generation of round 0 at which the generation's best "
        "individual changed (the paper's Fig. 3: generation 3 without decay, 11 with it).", "",
        f"| Arm | Seeds | Best mini acc. | p | Full test acc. | p | Last change (gen.) | p "
        f"| Networks / search | Trained | {hours} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        cells = [f"{row['arm']}{' (reference)' if row['arm'] == study.reference else ''}", str(row["seeds"])]
        for key in COMPARED:
            p_value = row[f"{key}_p"]
            cells += [_cell(row[f"{key}_mean"], row[f"{key}_std"], key != "last_change"),
                      "—" if p_value is None else f"{p_value:.2f}"]
        cells += [f"{row['evaluations_mean']:.1f}", str(row["trained"]), f"{row['device_hours']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Networks / search: distinct networks each search evaluated (a random arm matches the "
              "reference's, seed by seed). Trained: networks this arm's searches trained (the shared "
              "evaluation cache served the rest). Hours: measured time of the searches and retrains.", ""]
    for row in rows[1:]:
        tests = row["tests"]
        seeds = f"{row['seeds']} vs {rows[0]['seeds']} seeds"
        lines.append(f"- {row['arm']} vs {study.reference} ({seeds}): "
                     + "; ".join(study_stats.verdict(what, tests[key]) for key, what in COMPARED.items()) + ".")
    notes = sorted({t["note"] for row in rows for t in row["tests"].values() if t and t["note"]})
    lines += ["", *(f"{note[0].upper()}{note[1:]}." for note in notes)] if notes else []
    return "\n".join(lines) + "\n"


def curve_rows(curves: dict[str, dict]) -> list[dict]:
    return [{"arm": arm, **{key: curve[key][i] for key in CURVE_COLUMNS[1:]}}
            for arm, curve in curves.items() for i in range(len(curve["generation"]))]


def study_metrics(study: P.Study, rows: list[dict]) -> dict:
    keys = [k for k in TABLE_COLUMNS if k not in ("arm",)]
    return {"reference": study.reference, "seeds": len(study.seeds), "retrain_epochs": study.retrain_epochs,
            "arms": {row["arm"]: {key: row[key] for key in keys} for row in rows}}


# ---------------------------------------------------------------- the job


def report(params: P.Params | dict, arms_root: str | Path = "results/study/arms",
           out_dir: str | Path = "results/study/report") -> dict:
    """Write the study's report folder; return its metrics."""
    study = P.of(params).study
    arms = [study.reference, *study.compared]
    runs = {arm: [read_run(Path(arms_root), arm, seed) for seed in study.seeds] for arm in arms}
    rows = summarise(study, runs)
    curves = study_figures.curves_data(runs)
    metrics = study_metrics(study, rows)
    with atomic.staged_dir(out_dir) as staging:
        atomic.write_text(staging / "table.md", table_markdown(study, rows, runs))
        atomic.write_text(staging / "table.csv", formats.csv_text(rows, TABLE_COLUMNS))
        atomic.write_text(staging / "runs.csv", formats.csv_text([r for a in arms for r in runs[a]], RUN_COLUMNS))
        atomic.write_text(staging / "curves.csv", formats.csv_text(curve_rows(curves), CURVE_COLUMNS))
        atomic.write_json(staging / "metrics.json", metrics)
        atomic.write_bytes(staging / "fig3_generations.png", study_figures.draw_fig3(curves, len(study.seeds)))
        atomic.write_bytes(staging / "accuracy_by_arm.png",
                           study_figures.draw_accuracy(study_figures.accuracy_data(runs)))
    log(f"{len(arms)} arms x {len(study.seeds)} seeds -> {out_dir}")
    return metrics
