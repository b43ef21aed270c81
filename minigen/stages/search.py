"""The `search` stage: the evolution on the frozen mini set, crash-safe and reproducible.

After every generation the whole evolution state is checkpointed (atomically) under
`paths.checkpoints_dir()`, keyed by a fingerprint of everything that decides the result:
the seed, the search space, the search settings (all but `workers`, which only changes
speed, and `device`, replaced by the device *kind* the run resolved to), the mini set's
sha256 and the code version. A rerun with the same key resumes; any other run never sees
that checkpoint. The outputs appear only when the search is complete (built in a staging
folder, then swapped in), and then the checkpoint is deleted: the evaluation cache makes a
later rerun cheap.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from minigen import __version__
from minigen.store import atomic
from minigen.store import paths
from minigen.training import device as D
from minigen.space import evolution as E
from minigen.data import mini as M

OUTPUT_FILES = ("history.jsonl", "winners.json", "generations.csv", "evaluations.jsonl", "metrics.json")
GENERATION_COLUMNS = ("round", "generation", "best_accuracy", "best_fitness", "best_born", "mean_accuracy",
                      "evaluated", "winners")
UNKEYED_SEARCH_SETTINGS = ("workers", "device")


def log(message: str) -> None:
    tqdm.write(f"minigen search: {message}", file=sys.stderr)


# ---------------------------------------------------------------- checkpoints


def checkpoint_identity(params: dict, device_kind: str, mini_sha256: str) -> dict:
    """Everything a search's result depends on, and nothing else."""
    search = {k: v for k, v in params["search"].items() if k not in UNKEYED_SEARCH_SETTINGS}
    return {
        "code": __version__,
        "state_version": E.STATE_VERSION,
        "seed": params["seed"],
        "space": params["space"],
        "search": search,
        "device_kind": device_kind,
        "mini_sha256": mini_sha256,
    }


def fingerprint(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def checkpoint_path(key: str) -> Path:
    return paths.checkpoints_dir() / f"search-{key[:32]}.json"


def load_checkpoint(path: Path, key: str) -> dict | None:
    """The checkpoint at `path` if it was made under `key`, else None (with a reason)."""
    if not path.exists():
        return None
    try:
        checkpoint = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log(f"ignoring unreadable checkpoint {path} ({exc})")
        return None
    if not isinstance(checkpoint, dict) or checkpoint.get("fingerprint") != key:
        log(f"ignoring checkpoint {path}: it was made under other settings or another mini set")
        return None
    return checkpoint


def save_checkpoint(path: Path, key: str, identity: dict, state: dict, trained: int, seconds: float) -> None:
    atomic.write_text(path, json.dumps({
        "fingerprint": key,
        "identity": identity,
        "trained": trained,
        "seconds": seconds,
        "state": state,
    }, sort_keys=True))


# ---------------------------------------------------------------- outputs


def _jsonl(records) -> str:
    return "".join(json.dumps(record, sort_keys=True) + "\n" for record in records)


def _generations_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=GENERATION_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: row[key] for key in GENERATION_COLUMNS} for row in rows)
    return buffer.getvalue()


def render_outputs(evolution: E.Evolution, trained: int, seconds: float) -> dict[str, str]:
    """The output files' text. Everything but metrics' `trained` and `seconds` is a pure
    function of the settings and the mini set."""
    state = evolution.state
    genome_of = {e["genome_id"]: e["genome"] for e in state["evaluations"]}
    history = [{**record, "genome": genome_of[record["genome_id"]]} for record in state["history"]]
    winners = [{**w, "index": i, "genome": genome_of[w["genome_id"]]} for i, w in enumerate(state["winners"])]
    metrics = {**E.summary(state), "trained": trained, "seconds": round(seconds, 1)}
    return {
        "history.jsonl": _jsonl(history),
        "winners.json": atomic.dumps_json(winners),
        "generations.csv": _generations_csv(state["generations"]),
        "evaluations.jsonl": _jsonl(state["evaluations"]),
        "metrics.json": atomic.dumps_json(metrics),
    }


def write_outputs(out_dir: Path, files: dict[str, str]) -> None:
    """All files or none: build them in a staging folder, then swap it into place."""
    staging = atomic.staging_dir(out_dir)
    try:
        for name, text in files.items():
            atomic.write_text(staging / name, text)
        atomic.replace_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


# ---------------------------------------------------------------- the stage


def default_evaluator(mini: M.MiniSet, params: dict, device):
    from minigen.training.evaluator import Evaluator, search_recipe

    return Evaluator(mini, search_recipe(params), device, workers=params["search"]["workers"])


class ProgressEvaluate:
    """`evaluate` for the evolution: the evaluator under a tqdm bar with the best fitness."""

    def __init__(self, evaluator, evolution: E.Evolution):
        self.evaluator, self.evolution = evaluator, evolution

    def __call__(self, genomes: list) -> list:
        state = self.evolution.state
        best = [E.summary(state)["best_fitness"]] if state["history"] else []
        with tqdm(total=len(genomes), desc=f"round {state['round']} gen {state['generation']}",
                  unit="net", leave=False, file=sys.stderr, dynamic_ncols=True) as bar:
            def progress(index: int, evaluation) -> None:
                # A genome new to the search was born in this generation: fitness = accuracy.
                best.append(0.0 if evaluation.error is not None else evaluation.accuracy)
                bar.set_postfix(best_fitness=f"{max(best):.3f}")
                bar.update(1)

            return self.evaluator.evaluate(genomes, progress=progress)


def run(
    params: dict,
    mini_dir: str | Path = "data/mini",
    out_dir: str | Path = "results/search",
    make_evaluator: Callable = default_evaluator,
) -> dict:
    """Run (or resume) the search and write its outputs; returns metrics.json's content."""
    started = time.monotonic()
    out_dir = Path(out_dir)
    settings = E.Settings.from_params(params)
    device = D.resolve(params["search"]["device"])
    mini = M.load(mini_dir, device)
    identity = checkpoint_identity(params, D.kind(device), mini.sha256)
    key = fingerprint(identity)
    path = checkpoint_path(key)

    checkpoint = load_checkpoint(path, key)
    trained_before, seconds_before = 0, 0.0
    if checkpoint is None:
        evolution = E.Evolution(settings)
    else:
        evolution = E.Evolution(settings, checkpoint["state"])
        trained_before, seconds_before = checkpoint["trained"], checkpoint["seconds"]
        where = ("its end (outputs not yet written)" if evolution.done
                 else f"round {evolution.state['round']} generation {evolution.state['generation']}")
        log(f"resuming from checkpoint {path.name} at {where}")

    with make_evaluator(mini, params, device) as evaluator:
        def seconds() -> float:
            return seconds_before + time.monotonic() - started

        def after_generation(row: dict) -> None:
            save_checkpoint(path, key, identity, evolution.state, trained_before + evaluator.trained, seconds())
            log(f"round {row['round']} gen {row['generation']}: best accuracy {row['best_accuracy']:.3f} "
                f"(born {row['best_born']}), best fitness {row['best_fitness']:.3f}, "
                f"mean {row['mean_accuracy']:.3f}, {row['evaluated']} new, "
                f"winners {row['winners']}/{settings.winners}, {seconds():.1f} s")

        evolution.run(ProgressEvaluate(evaluator, evolution), after_generation)
        trained = trained_before + evaluator.trained

    files = render_outputs(evolution, trained, seconds())
    write_outputs(out_dir, files)
    path.unlink(missing_ok=True)
    return json.loads(files["metrics.json"])
