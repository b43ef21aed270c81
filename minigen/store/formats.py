"""The files stages hand each other: their names, their columns, and how they are written.

A stage writes these and a later one reads them, so they live here and not in either
stage: `report` reads what `search` and `retrain` wrote without importing them (or torch).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

from minigen.errors import UserError

# search -> collect, report
# metrics.json: what defines the result (dvc.yaml's metrics); cost.json: what it took (time,
# networks trained, where it ran), which differs between identical runs.
SEARCH_FILES = ("history.jsonl", "winners.json", "generations.csv", "evaluations.jsonl", "metrics.json", "cost.json")
GENERATION_COLUMNS = ("round", "generation", "best_accuracy", "best_fitness", "best_born", "mean_accuracy",
                      "evaluated", "winners")
# retrain -> report
RETRAIN_FILES = ("metrics.json", "cost.json", "curve.csv", "model.safetensors", "dvclive")
CURVE_COLUMNS = ("epoch", "train_loss", "train_accuracy", "test_accuracy")
# The curve again in dvclive's layout (`dvclive/`), which `dvc plots` and `dvc exp show` read:
# curve column -> dvclive metric name (its file is dvclive/plots/metrics/<name>.tsv).
DVCLIVE_DIR = "dvclive"
DVCLIVE_METRICS = {"train_loss": "train/loss", "train_accuracy": "train/accuracy", "test_accuracy": "test/accuracy"}

WEIGHTS = "model.safetensors"


def genome_file(genomes_dir: str | Path, index: int) -> Path:
    """collect -> retrain, report: the i-th collected genome."""
    return Path(genomes_dir) / f"genome_{index}.json"


def retrain_dir(retrain_root: str | Path, index: int, seed: int) -> Path:
    """retrain -> report: the outputs of the i-th genome's retrain with seed `seed`."""
    return Path(retrain_root) / f"genome_{index}" / f"seed_{seed}"


def json_sha256(obj) -> str:
    """sha256 of `obj` as canonical JSON (sorted keys, no spaces, ASCII): a content key."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def jsonl_text(records) -> str:
    return "".join(json.dumps(record, sort_keys=True) + "\n" for record in records)


def csv_text(rows: list[dict], columns: tuple[str, ...]) -> str:
    """`rows` as CSV with a header; the csv module writes floats with repr, so they read back bit for bit."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def dvclive_files(curve: list[dict]) -> dict[str, str]:
    """A retrain curve (rows of CURVE_COLUMNS) as the files dvclive's `Live.log_metric` writes
    (one TSV per metric, step = epoch, and a metrics.json of the last values), by path in the
    dvclive folder. Written here, not through `Live`: `Live` opens the git and DVC repository
    of the working directory (it runs `dvc init` in a git repo without DVC, and fails in one
    without commits) and posts to DVC Studio when a token is set; a training stage does
    neither. tests/test_retrain.py checks these bytes against dvclive's own."""
    files, summary = {}, {}
    for column, name in DVCLIVE_METRICS.items():
        section, key = name.split("/")
        lines = [f"step\t{key}"] + [f"{row['epoch']}\t{row[column]!r}" for row in curve]
        files[f"plots/metrics/{name}.tsv"] = "\n".join(lines) + "\n"
        if curve:
            summary.setdefault(section, {})[key] = curve[-1][column]
    if curve:
        summary["step"] = curve[-1]["epoch"]
    files["metrics.json"] = json.dumps(summary, indent=4) + "\n"
    return files


def read_csv(path: Path, columns: tuple[str, ...], what: str) -> list[dict]:

    """The rows of a CSV file that must hold `columns`; a missing file or column is one line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text: is it the {what}?") from None
    rows = list(csv.DictReader(io.StringIO(text)))
    header = text.splitlines()[0].split(",") if text else []
    missing = [c for c in columns if c not in header]
    if missing:
        raise UserError(f"{path} is malformed: column(s) {', '.join(missing)} missing")
    return rows


# study: each arm x seed's search and retrain (stages/study.py) -> study report
COST_FILE = "cost.json"  # beside a stage's metrics.json: what its run took


def study_run_dir(arms_root: str | Path, arm: str, seed: int) -> Path:
    """The study's arm `arm` with seed `seed`: its search/, genomes/genome_0.json (its best
    genome) and retrain/genome_0/seed_{seed}/."""
    return Path(arms_root) / arm / f"seed_{seed}"
