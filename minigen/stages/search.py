"""The `search` stage: the evolution (or another strategy of `space/strategies`, as
`search.strategy` says) on the frozen mini set, crash-safe and reproducible.

After every generation the whole evolution state is checkpointed (atomically) under
`paths.checkpoints_dir()`, keyed by a fingerprint of everything that decides the result:
the seed, the search space, the search settings (all but `workers`, which only changes
speed, and `device`, replaced by the device *kind* the run resolved to), the mini set's
sha256 and a fingerprint of the code it runs (`code_version`). A rerun with the same key
resumes; any other run never sees that checkpoint. The outputs appear only when the search
is complete (built in a staging folder, then swapped in), and then the checkpoint is
deleted: the evaluation cache makes a later rerun cheap.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from minigen import log as messages
from minigen import settings as P
from minigen.store import atomic, integrity
from minigen import pipeline
from minigen.store import code_version, formats, paths, provenance
from minigen.training import device as D
from minigen.space import evolution as E
from minigen.space import state as state_schema
from minigen.space import strategies
from minigen.data import mini as M

GENERATION_COLUMNS = formats.GENERATION_COLUMNS
UNKEYED_SEARCH_SETTINGS = P.UNKEYED_SEARCH_SETTINGS


log = messages.logger("search").info


# ---------------------------------------------------------------- checkpoints


def checkpoint_identity(params: P.Params | dict, device_kind: str, mini_sha256: str) -> dict:
    """Everything a search's result depends on, and nothing else."""
    params = P.of(params)
    return {
        "code": code_version.fingerprint(pipeline.STAGE_CODE["search"]),
        "state_version": E.STATE_VERSION,
        "seed": params.seed,
        "space": params.space.model_dump(),
        "search": params.search.keyed(),
        "device_kind": device_kind,
        "mini_sha256": mini_sha256,
    }


def fingerprint(identity: dict) -> str:
    return formats.json_sha256(identity)


def checkpoint_path(key: str) -> Path:
    return paths.checkpoints_dir() / f"search-{key[:32]}.json"


def load_checkpoint(path: Path, key: str, settings: E.Settings | None = None) -> dict | None:
    """The checkpoint at `path` if it is intact and was made under `key`, else None.

    A checkpoint that fails its checksum (edited, torn) or its schema (it could not be
    resumed) is reported in one line and ignored: the search starts from scratch.
    """
    if not path.exists():
        return None
    try:
        checkpoint = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        log(f"ignoring unreadable checkpoint {path} ({type(exc).__name__}); starting from scratch")
        return None
    if not integrity.is_sealed(checkpoint):
        log(f"ignoring checkpoint {path}: its checksum does not match its content (edited or damaged); "
            "starting from scratch")
        return None
    if checkpoint.get("fingerprint") != key:
        log(f"ignoring checkpoint {path}: it was made under other settings or another mini set")
        return None
    problem = _checkpoint_problem(checkpoint, settings)
    if problem is not None:
        log(f"ignoring checkpoint {path}: {problem}; starting from scratch")
        return None
    return checkpoint


def _checkpoint_problem(checkpoint: dict, settings: E.Settings | None) -> str | None:
    trained, seconds = checkpoint.get("trained"), checkpoint.get("seconds")
    if not (isinstance(trained, int) and not isinstance(trained, bool) and trained >= 0):
        return f"'trained' must be an integer >= 0, got {trained!r}"
    if not (isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds >= 0):
        return f"'seconds' must be a number >= 0, got {seconds!r}"
    return None if settings is None else state_schema.problem(checkpoint.get("state"), settings)


def save_checkpoint(path: Path, key: str, identity: dict, state: dict, trained: int, seconds: float) -> None:
    atomic.write_text(path, json.dumps(integrity.seal({
        "fingerprint": key,
        "identity": identity,
        "trained": trained,
        "seconds": seconds,
        "state": state,
    }), sort_keys=True))


# ---------------------------------------------------------------- outputs


# What defines the search's result, for `dvc exp show`; the rest of E.summary goes to cost.json.
METRICS_KEYS = ("best_accuracy", "best_fitness", "winners")


def render_outputs(evolution: E.Evolution, trained: int, seconds: float, placement: dict | None = None) -> dict[str, str]:
    """The output files' text: every file but cost.json is a pure function of the settings
    and the mini set. cost.json says what the search took and how it ended: evaluations,
    networks trained by this run (the rest came from the cache), seconds, rounds,
    generations, why it stopped, and where it ran (D.Placement.record)."""
    state = evolution.state
    genome_of = {e["genome_id"]: e["genome"] for e in state["evaluations"]}
    history = [{**record, "genome": genome_of[record["genome_id"]]} for record in state["history"]]
    winners = [{**w, "index": i, "genome": genome_of[w["genome_id"]]} for i, w in enumerate(state["winners"])]
    summary = E.summary(state)
    metrics = {key: summary[key] for key in METRICS_KEYS}
    cost = {**{key: value for key, value in summary.items() if key not in METRICS_KEYS},
            "trained": trained, "seconds": round(seconds, 1), "code": provenance.code_version()}
    if placement is not None:
        cost["placement"] = placement
    return {
        "history.jsonl": formats.jsonl_text(history),
        "winners.json": atomic.dumps_json(winners),
        "generations.csv": formats.csv_text(state["generations"], GENERATION_COLUMNS),
        "evaluations.jsonl": formats.jsonl_text(state["evaluations"]),
        "metrics.json": atomic.dumps_json(metrics),
        "cost.json": atomic.dumps_json(cost),
    }



def write_outputs(out_dir: Path, files: dict[str, str]) -> None:
    """All files or none: build them in a staging folder, then swap it into place."""
    with atomic.staged_dir(out_dir) as staging:
        for name, text in files.items():
            atomic.write_text(staging / name, text)


# ---------------------------------------------------------------- the stage


def default_evaluator(mini: M.MiniSet, params: dict, placement: D.Placement):
    from minigen.training.evaluator import Evaluator, search_recipe

    cards = list(placement.devices) if placement.device.type == "cuda" else None
    return Evaluator(mini, search_recipe(params), placement.device, workers=params["search"]["workers"], cards=cards)


class ProgressEvaluate:
    """`evaluate` for the evolution: on a terminal, the evaluator under a tqdm bar over the
    generation's genomes. Elsewhere (a log file, Snakemake, DVC) no bar (tqdm's
    `disable=None`): its redrawn frames would fill the log with carriage returns, and
    `GenerationProgress`'s one line per generation says what a reader needs."""

    def __init__(self, evaluator, evolution: E.Evolution):
        self.evaluator, self.evolution = evaluator, evolution

    def __call__(self, genomes: list) -> list:
        state, generations = self.evolution.state, self.evolution.settings.generations
        best = [E.summary(state)["best_fitness"]] if state["history"] else []
        with tqdm(total=len(genomes), desc=f"round {state['round']} gen {state['generation'] + 1}/{generations}",
                  unit="net", leave=False, file=sys.stderr, dynamic_ncols=True, disable=None) as bar:
            def progress(index: int, evaluation) -> None:
                # A genome new to the search was born in this generation: fitness = accuracy.
                best.append(0.0 if evaluation.error is not None else evaluation.accuracy)
                bar.set_postfix(best_fitness=f"{max(best):.3f}", trained=self.evaluator.trained)
                bar.update(1)

            return self.evaluator.evaluate(genomes, progress=progress)


class GenerationProgress:
    """The line logged after each generation, one a person can plan by: where the search
    is (round, generation of the round's generations), what it has evaluated and trained,
    and when the round ends at this run's pace (sooner if enough winners turn up)."""

    def __init__(self, settings: E.Settings):
        self.settings, self.started, self.done = settings, time.monotonic(), 0

    def line(self, row: dict, evaluations: int, trained: int, seconds: float) -> str:
        self.done += 1
        left = self.settings.generations - 1 - row["generation"]
        pace = (time.monotonic() - self.started) / self.done
        when = f"round ETA {messages.duration(pace * left)}" if left else "round done"
        return (f"round {row['round']} gen {row['generation']} ({row['generation'] + 1}/{self.settings.generations}): "
                f"best accuracy {row['best_accuracy']:.3f} (born {row['best_born']}), "
                f"best fitness {row['best_fitness']:.3f}, mean {row['mean_accuracy']:.3f}; "
                f"{evaluations} evaluated ({row['evaluated']} new), {trained} trained; "
                f"winners {row['winners']}/{self.settings.winners}; {messages.duration(seconds)} so far, {when}")


def run(
    params: dict,
    mini_dir: str | Path = "data/mini",
    out_dir: str | Path = "results/search",
    make_evaluator: Callable = default_evaluator,
) -> dict:
    """Run (or resume) the search and write its outputs; returns metrics.json's and
    cost.json's content in one dict."""
    started = time.monotonic()
    out_dir = Path(out_dir)
    settings = E.Settings.from_params(params)
    atomic.check_output_dir(out_dir)
    atomic.check_writable(paths.evaluations_dir(), "the evaluation cache")
    atomic.check_writable(paths.checkpoints_dir(), "the checkpoint folder")
    # Workers spread over the cards: claim up to one per worker.
    placement = D.place(params["search"]["device"], cards=params["search"]["workers"])
    device = placement.device
    mini = M.load(mini_dir, device)
    log(placement.describe())  # after the inputs are checked: a refusal stays one line
    identity = checkpoint_identity(params, D.kind(device), mini.sha256)
    key = fingerprint(identity)
    path = checkpoint_path(key)

    checkpoint = load_checkpoint(path, key, settings)
    trained_before, seconds_before = 0, 0.0
    if checkpoint is None:
        evolution = strategies.create(params)
    else:
        evolution = strategies.create(params, checkpoint["state"])
        trained_before, seconds_before = checkpoint["trained"], checkpoint["seconds"]
        where = ("its end (outputs not yet written)" if evolution.done
                 else f"round {evolution.state['round']} generation {evolution.state['generation']}")
        log(f"resuming from checkpoint {path.name} at {where}")

    with make_evaluator(mini, params, placement) as evaluator:
        def seconds() -> float:
            return seconds_before + time.monotonic() - started

        def after_generation(row: dict) -> None:
            trained = trained_before + evaluator.trained
            save_checkpoint(path, key, identity, evolution.state, trained, seconds())
            log(progress.line(row, len(evolution.state["evaluations"]), trained, seconds()))

        progress = GenerationProgress(settings)
        evolution.run(ProgressEvaluate(evaluator, evolution), after_generation)
        trained = trained_before + evaluator.trained

    files = render_outputs(evolution, trained, seconds(), placement.record())
    write_outputs(out_dir, files)
    path.unlink(missing_ok=True)
    return {**json.loads(files["metrics.json"]), **json.loads(files["cost.json"])}

