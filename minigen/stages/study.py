"""The study's jobs: one arm x seed's search, and the retrain of its best genome.

An arm is the settings of `params.yaml` with the arm's overrides (`study.arms`), the seed
`seed` (the search's generators, every network's weights and shuffles; the mini set stays
the pipeline's) and `study.retrain_epochs` (`settings.arm_settings`). Its folder
(`formats.study_run_dir`) holds what the pipeline's search, collect and retrain would:

- `search/`: the search stage's files, from the search stage itself, so it resumes from
  its checkpoint after a crash and shares the evaluation cache with every other search;
- `genomes/genome_0.json`: its best genome by mini-set accuracy (ties: the first
  evaluated), in collect's record format: the mini accuracy is what the study questions,
  so the study retrains the genome the search rates best;
- `retrain/genome_0/seed_{seed}/`: that genome retrained by the retrain stage under
  `seed` (resumable per epoch).

A random arm without a `search.budget` evaluates exactly as many networks as the
reference arm's search of the same seed did, read from that search's outputs: the two
are compared at equal cost.
"""

from __future__ import annotations

from pathlib import Path

from minigen import log as messages
from minigen import settings as P
from minigen.errors import UserError
from minigen.stages import collect as collect_stage
from minigen.stages import retrain as retrain_stage
from minigen.stages import search as search_stage
from minigen.store import atomic, formats

log = messages.logger("study").info
BEST = "best_accuracy"  # a genome record's `source`: the search's best by mini-set accuracy


def job_settings(params: P.Params | dict, arm: str, seed: int) -> P.Params:
    """The settings arm `arm`'s jobs run with under seed `seed`."""
    params = P.of(params)
    if arm not in params.study.arms:
        raise UserError(f"study arm {arm!r} is not in study.arms ({', '.join(params.study.arms)})")
    if seed not in params.study.seeds:
        raise UserError(f"seed {seed} is not in study.seeds ({', '.join(map(str, params.study.seeds))})")
    return P.arm_settings(params, arm, seed)


def matched_budget(params: P.Params, job: P.Params, arms_root: Path, seed: int) -> P.Params:
    """`job` with the budget of the reference's search of this seed, where it is a random
    search with none of its own; `job` unchanged otherwise."""
    if job.search.strategy != "random" or job.search.budget is not None:
        return job
    reference = params.study.reference
    folder = formats.study_run_dir(arms_root, reference, seed) / "search"
    done = {}
    for name in ("metrics.json", formats.COST_FILE):  # evaluations: in either, as the search writes it
        if (folder / name).is_file():
            done.update(atomic.read_json(folder / name, "search results"))
    evaluations = done.get("evaluations")
    if type(evaluations) is not int:
        raise UserError(f"{folder} holds no finished search of the reference arm {reference} "
                        f"(run `minigen study search {reference} {seed}` first)")
    tree = P.as_dict(job)
    tree["search"]["budget"] = evaluations
    return P.of(tree)


def best_record(search_dir: Path, arm: str, seed: int, job: P.Params) -> dict:
    """The best genome by mini-set accuracy, as a genome record `retrain` reads."""
    evaluated = [e for e in collect_stage.read_evaluations(search_dir / "evaluations.jsonl") if e.get("error") is None]
    if not evaluated:
        raise UserError(f"{search_dir}: every evaluation failed, so there is no genome to retrain")
    best = max(evaluated, key=lambda e: e["accuracy"])  # max keeps the first of equals: the first evaluated
    return {
        "index": 0,
        "genome": best["genome"],
        "genome_id": best["genome_id"],
        "source": BEST,
        "search": {key: best[key] for key in ("accuracy", "round", "generation") if key in best},
        "study": {"arm": arm, "seed": seed, "strategy": job.search.strategy, "budget": job.search.budget},
    }


def search(params: P.Params | dict, arm: str, seed: int, mini_dir: str | Path = "data/mini",
           arms_root: str | Path = "results/study/arms") -> dict:
    """Run (or resume) arm `arm`'s search under `seed`; write its search/ and genomes/."""
    params, arms_root = P.of(params), Path(arms_root)
    job = job_settings(params, arm, seed)
    if arm != params.study.reference:
        job = matched_budget(params, job, arms_root, seed)
    folder = formats.study_run_dir(arms_root, arm, seed)
    budget = f", budget {job.search.budget} networks" if job.search.budget is not None else ""
    log(f"{arm} seed {seed}: {job.search.strategy} search{budget} -> {folder}")
    results = search_stage.run(P.as_dict(job), mini_dir, folder / "search")
    record = best_record(folder / "search", arm, seed, job)
    with atomic.staged_dir(folder / "genomes") as staging:
        atomic.write_json(formats.genome_file(staging, 0), record)
    log(f"{arm} seed {seed}: best mini-set accuracy {record['search']['accuracy']:.3f} ({record['genome_id']})")
    return results


def retrain(params: P.Params | dict, arm: str, seed: int, raw_dir: str | Path = "data/raw",
            arms_root: str | Path = "results/study/arms", mini_dir: str | Path = "data/mini") -> dict:
    """Retrain arm `arm`'s best genome under `seed` on the full data (retrain/genome_0/seed_{seed}/)."""
    job = job_settings(params, arm, seed)
    folder = formats.study_run_dir(arms_root, arm, seed)
    return retrain_stage.retrain(P.as_dict(job), 0, folder / "genomes", raw_dir, folder / "retrain",
                                 seed=seed, mini_dir=mini_dir)
