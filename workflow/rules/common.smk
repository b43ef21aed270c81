# Helpers shared by the rules.
import csv
import hashlib
import os

import sys
from pathlib import Path

import yaml
from snakemake.common.configfile import load_configfile
from snakemake.utils import update_config

from minigen import pipeline
from minigen import settings as minigen_settings
from minigen.errors import UserError
from minigen.store import atomic, code_version


# Settings given on Snakemake's command line (--config, --configfile) must be the ones
# minigen runs with and the ones Snakemake records behind each output. The merged config
# is validated once, now (a bad value stops Snakemake in one line, before any job starts),
# and the rules read the validated settings (PARAMS). When it is not params.yaml, it is
# written to a file named by its content, which the rules pass as --params; without
# overrides they pass params.yaml, exactly as dvc.yaml's commands do.
def _as_yaml(value):
    """A --config value read as params.yaml would read it: Snakemake parses the inside of
    `search={"p_op": 0.7}` as text ("0.7"), which minigen would refuse as a probability."""
    if isinstance(value, dict):
        return {key: _as_yaml(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_yaml(item) for item in value]
    if isinstance(value, str):
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        return value if isinstance(parsed, (dict, list)) else parsed
    return value


def _settings():
    """(the validated settings, whether --config/--configfile changed params.yaml's)."""
    update_config(config, _as_yaml(dict(workflow.config_settings.config)))
    overridden = not (os.path.exists("params.yaml") and config == load_configfile("params.yaml"))
    source = "params.yaml with Snakemake's --config/--configfile" if overridden else "params.yaml"
    try:
        return minigen_settings.validate(config, source=source), overridden
    except UserError as exc:
        sys.exit(f"minigen: error: {exc}")


def _params_file(overridden):
    if not overridden:
        return "params.yaml"
    text = yaml.safe_dump(dict(config), sort_keys=False)
    path = Path(".snakemake", "minigen", f"params-{hashlib.sha256(text.encode()).hexdigest()[:12]}.yaml")
    if not path.is_file():
        atomic.write_text(path, text)
    return path.as_posix()


PARAMS, _OVERRIDDEN = _settings()
PARAMS_FILE = _params_file(_OVERRIDDEN)


def params_file(wildcards, input):
    """A rule's `params: file`, its --params: PARAMS_FILE. A function of the inputs, so
    Snakemake takes it as derived from them, not as a setting: the settings are recorded
    in `params: settings`, and the path switching between params.yaml and an override file
    must not re-run download when only search.p_op changed."""
    return PARAMS_FILE



def settings(*names):
    """The settings a rule reads, by dotted name ("search.p_op", "seed").

    Held in a rule's `params:`, so Snakemake re-runs the rule when one of them changes;
    dvc.yaml lists the same names under the stage's `params:`.
    """
    chosen = {}
    for name in names:
        value = PARAMS
        for key in name.split("."):
            value = value[key]
        chosen[name] = value
    return chosen


def stage_settings(stage):
    """The settings that decide `stage`'s result (minigen.pipeline.STAGE_PARAMS)."""
    return settings(*pipeline.STAGE_PARAMS[stage])


def stage_code(stage):
    """The modules whose edit re-runs `stage` (minigen.pipeline.STAGE_CODE), as paths from
    the working directory: `make demo` runs in demo/, with the code one folder up."""
    files = code_version.module_files(pipeline.STAGE_CODE[stage], root=Path(workflow.basedir))
    return [os.path.relpath(file) for file in files]


def collected():
    """Indices of the genomes `collect` writes and `retrain` trains: 0 .. collect.top_k - 1."""
    return range(PARAMS["collect"]["top_k"])


def retrain_jobs(pattern):
    """`pattern` ({i}, {seed}) for every retrain job: each collected genome x each of
    retrain.seeds ([seed] when left out: the validated settings fill it in)."""
    return expand(pattern, i=collected(), seed=PARAMS["retrain"]["seeds"])


def runtimes():
    """Every job's benchmark file, marked for `snakemake --report` (rule `all` lists them).
    Each carries its job's wall-clock time and peak memory as labels, so the report's
    Runtime list shows them without opening a file."""
    jobs = ["download", "sample", "search", "collect", *retrain_jobs("retrain/genome_{i}/seed_{seed}"), "report"]
    return [report(f"benchmarks/{job}.tsv", caption="workflow/report/benchmarks.rst", category="Runtime",
                   labels=_runtime_labels(job)) for job in jobs]


def _runtime_labels(job):
    def labels(wildcards):
        with open(f"benchmarks/{job}.tsv") as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        return {"job": job, "wall-clock time": row["h:m:s"], "seconds": row["s"], "peak memory (MB)": row["max_rss"]}

    return labels


# Every command ends in `2>&1 | tee {log}`: its output goes to the rule's log and to the
# terminal. Training rules start with CUBLAS_WORKSPACE_CONFIG=:16:8, which deterministic
# algorithms need on CUDA. dvc.yaml's `cmd`s are the same commands without the `| tee`.


# Cluster resources (profiles/slurm; a local run ignores them). A rule's time limit comes
# from minigen's cost model (`minigen plan` shows the same estimates): the worst case
# times a safety factor; a site overrides any resource under `set-resources` in its
# profile. mem_mb is host memory: a GPU job keeps its data on the card.
MEM_MB = {"download": 4000, "sample": 4000, "collect": 2000, "retrain": 6000, "report": 4000}
SEARCH_MEM_MB = 4000  # the parent process, plus WORKER_MEM_MB per worker process
WORKER_MEM_MB = 2500  # an evaluating process peaks at about 2 GB (BENCHMARKS.md)


def runtime(stage):
    """The time limit in minutes of `stage`'s jobs, for `resources: runtime=...`."""

    def minutes(wildcards, input):
        if workflow.remote_exec:
            return 0  # inside a cluster job, whose limit is set: no estimate needed
        from minigen.training import cost  # torch-free: FLOPs from the genome description

        if stage == "search":
            return cost.search_limit_minutes(PARAMS)
        if stage == "retrain":
            return cost.retrain_limit_minutes(PARAMS, input.genome)  # its own FLOPs, once collected
        return cost.CPU_STAGE_MINUTES[stage]

    return minutes


def mem_mb(stage):
    if stage == "search":
        return SEARCH_MEM_MB + WORKER_MEM_MB * PARAMS["search"]["workers"]
    return MEM_MB[stage]


def cpus(wildcards, threads):
    """cpus_per_task: the rule's threads."""
    return threads
