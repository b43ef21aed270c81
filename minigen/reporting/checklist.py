"""Lindauer and Hutter's NAS best-practices checklist (JMLR 2020), answered by the run.

Every answer is taken from the run's own records (params, metrics, code version), and an
item this run does not meet says so plainly instead of being left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from minigen.store import atomic, formats


@dataclass
class RunFacts:
    """What the report knows about the run it describes."""

    params: dict
    code: dict  # store.provenance.code_version()
    search: dict  # the search's metrics (and cost) record
    retrains: list[dict]  # one per retrained genome x seed: seed, device, seconds, epochs, recipe
    study: dict | None = None  # the study report's metrics, when a study ran
    notes: list[str] = field(default_factory=list)


def _hours(seconds: float | None) -> str:
    return "not recorded" if seconds is None else f"{seconds / 3600:.3f} device-hours ({seconds:,.0f} s)"


def _devices(facts: RunFacts) -> str:
    found = sorted({str(r.get("device_name") or r.get("device_kind") or "unknown") for r in facts.retrains})
    search = facts.search.get("device_name") or facts.search.get("device_kind")
    return f"search on {search or 'an unrecorded device'}; retrain on {', '.join(found) or 'no device yet'}"


def _code_line(code: dict) -> str:
    commit = code.get("git_commit") or "unknown (not run from a git checkout)"
    dirty = {True: ", with uncommitted changes to minigen/ (not reproducible from the commit alone)",
             False: ", a clean tree", None: ""}[code.get("git_dirty")]
    return f"minigen {code.get('minigen')} at git commit `{commit}`{dirty}; torch {code.get('torch')}"


def _seeds(facts: RunFacts) -> str:
    retrain_seeds = sorted({r["seed"] for r in facts.retrains if r.get("seed") is not None})
    return (f"pipeline seed {facts.params['seed']} (mini-set sampling, search, evaluations); "
            f"retrain seeds {', '.join(map(str, retrain_seeds)) or 'none yet'}")


def _budgets(facts: RunFacts) -> str:
    s, r = facts.params["search"], facts.params["retrain"]
    return (f"search: population {s['population']}, {s['generations']} generations per round, at most "
            f"{s['max_rounds']} rounds, {s['epochs']} epochs per network on the mini set; it evaluated "
            f"{facts.search.get('evaluations', 'an unrecorded number of')} networks. "
            f"Retrain: {r['recipe']} recipe, {r['epochs']} epochs on the full training set{_test_sets(facts)}")


def _test_sets(facts: RunFacts) -> str:
    sizes = sorted({(r.get("test_images"), r.get("clean_test_images")) for r in facts.retrains
                    if isinstance(r.get("test_images"), int) and isinstance(r.get("clean_test_images"), int)})
    if not sizes:
        return ""
    return "; tested on " + ", ".join(f"all {n:,} test images and on the {m:,} the search never saw"
                                      for n, m in sizes)


def _study(facts: RunFacts, what: str) -> tuple[str, str]:
    if not facts.study:
        return "no", f"not in this run: run `snakemake study` (README, \"The study\") for {what}"
    arms = ", ".join(sorted(facts.study.get("arms", {}))) or "none"
    return "yes", f"the study ran arms {arms} over seeds {facts.study.get('seeds')}"


def items(facts: RunFacts) -> list[tuple[str, str, str, str]]:
    """(section, question, yes/no/partly, answer) for every item of the checklist."""
    retrain_seconds = sum(r.get("seconds") or 0.0 for r in facts.retrains) if facts.retrains else None
    random_done, random_answer = _study(facts, "the random-search baseline")
    ablation_done, ablation_answer = _study(facts, "the decay ablation")
    seeds_done = "yes" if facts.study or len({r.get("seed") for r in facts.retrains}) > 1 else "partly"
    release = "Best practices for releasing code"
    compare = "Best practices for comparing NAS methods"
    report = "Best practices for reporting important details"
    return [
        (release, "Code for the training pipeline used to evaluate the final architectures", "yes",
         f"`minigen/training/loop.py`, `minigen/stages/retrain.py`; {_code_line(facts.code)}"),
        (release, "Code for the search space", "yes", "`minigen/space/genome.py`, `minigen/model/ops.py`"),
        (release, "Hyperparameters and random seeds of the final evaluation pipeline", "yes",
         f"`params.yaml` section `retrain`; {_seeds(facts)}"),
        (release, "Code for the NAS method", "yes", "`minigen/space/evolution.py`, `minigen/stages/search.py`"),
        (release, "Hyperparameters and random seeds of the NAS method", "yes",
         f"`params.yaml` sections `space` and `search`; {_seeds(facts)}"),
        (compare, "Same benchmark, data split, search space and training code for every method compared",
         random_done, "every arm runs the same mini set, space, recipe and evaluation cache" if facts.study
         else "only the paper's method ran"),
        (compare, "Confounding factors controlled (hardware, library versions, runtimes)", "partly",
         f"{_devices(facts)}; {_code_line(facts.code)}; results are bit-identical per device kind"),
        (compare, "Ablation studies", ablation_done, ablation_answer),
        (compare, "Same evaluation protocol for the methods compared", random_done, random_answer),
        (compare, "Performance compared over time", "partly",
         "per-generation best accuracy (generations.csv, Fig. 4); no anytime comparison across methods"),
        (compare, "Comparison to random search", random_done, random_answer),
        (compare, "Multiple runs, with seeds reported", seeds_done, _seeds(facts)),
        (compare, "Tabular or surrogate benchmarks for in-depth evaluation", "no",
         "none exists for this search space; every network is trained"),
        (report, "How hyperparameters were tuned, and the time and resources it took", "no",
         "none were tuned: every setting is the paper's (or this run's params.yaml as written)"),
        (report, "Time for the entire end-to-end method", "yes",
         f"search {_hours(facts.search.get('seconds'))}; retrain {_hours(retrain_seconds)} in all"),
        (report, "All details of the experimental setup", "yes",
         f"{_budgets(facts)}; params.yaml and dvc.lock hold every setting"),
    ]


def render(facts: RunFacts) -> str:
    lines = ["# NAS best-practices checklist, answered by this run", "",
             "Lindauer and Hutter, *Best Practices for Scientific Research on Neural Architecture Search*,",
             "JMLR 21 (2020). Each answer comes from this run's own records.", ""]
    section = None
    answered = items(facts)
    for number, (where, question, done, answer) in enumerate(answered, start=1):
        if where != section:
            lines += ([""] if section else []) + [f"## {where}", ""]
            section = where
        lines.append(f"{number}. **{question}?** {done.capitalize()}. {answer[0].upper()}{answer[1:]}.")
    not_met = [q for _, q, done, _ in answered if done != "yes"]
    lines += ["", "## Not met by this run", ""]
    lines += [f"- {q}" for q in not_met] or ["- nothing"]
    lines += [f"- {note}" for note in facts.notes]
    return "\n".join(lines) + "\n"


def gather(params: dict, search_dir: Path, runs: list[dict], code: dict) -> RunFacts:
    """The facts of a finished run: its search's metrics.json and cost.json files, and its
    retrains as the report read them (`report.read_retrained`: metrics, with their cost)."""
    search = {**_read(Path(search_dir) / "metrics.json"), **_read(Path(search_dir) / formats.COST_FILE)}
    search.update(_where(search.get("placement")))
    retrains = [{**run, **run["cost"], **_where(run["cost"].get("placement"))} for run in runs]
    return RunFacts(params=params, code=code, search=search, retrains=retrains)


def _read(path: Path) -> dict:
    record = atomic.read_json(path, "stage record") if path.is_file() else {}
    return record if isinstance(record, dict) else {}


def _where(placement) -> dict:
    """device_name: the card's name, or the device (cpu) when no card was used."""
    if not isinstance(placement, dict):
        return {}
    names = [card.get("name") for card in placement.get("cards") or [] if isinstance(card, dict)]
    return {"device_name": ", ".join(map(str, names)) or placement.get("device")}
