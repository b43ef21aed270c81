"""Helpers for the pipeline tests: a copy of the project's workflow files, and the two
engines' views of it (Snakemake's planned jobs, DVC's stages)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
# What a pipeline run needs from the repository, besides the installed package.
PIPELINE_FILES = ("Snakefile", "workflow", "profiles", "dvc.yaml", ".dvcignore", ".gitignore", "params.yaml", "minigen")

# Seconds-long settings on the embedded digits data: every stage runs, nothing is large.
TINY_OVERRIDES = {
    "data": {"dataset": "digits", "train_per_class": 4, "test_per_class": 2},
    "space": {"channels": [8, 16]},
    "search": {"population": 3, "keep": 2, "generations": 2, "epochs": 1, "batch_size": 16,
               "winners": 2, "winner_threshold": 0.0, "max_rounds": 1, "device": "cpu"},
    "collect": {"top_k": 2, "indices": [0, 1]},
    "retrain": {"epochs": 1, "batch_size": 128, "device": "cpu"},
}


def paper_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def tiny_params() -> dict:
    params = paper_params()
    for section, values in TINY_OVERRIDES.items():
        params[section].update(values)
    return params


def archive_params(directory: Path) -> dict:
    """Tiny settings on a tiny CIFAR-format archive (the offline `data.archive` route).

    The digits' full training split (1,442 images) makes each retrain take up to minutes on
    2 CPU cores; this archive's 100 images take seconds, so the tests that run the
    pipeline many times (DVC's) use it.
    """
    from archives import make_cifar_archive

    path, md5 = make_cifar_archive(directory, train_per_class=10, test_per_class=4)
    params = tiny_params()
    params["data"].update(dataset="cifar10", archive=str(path), archive_md5=md5)
    return params


def write_params(path: Path, params: dict) -> None:
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def copy_pipeline(dest: Path, params: dict | None = None) -> Path:
    """The workflow files in `dest`, with `params` as its params.yaml when given."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PIPELINE_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, dest / name)
    if params is not None:
        write_params(dest / "params.yaml", params)
    return dest


def tool_env(**extra: str) -> dict:
    """The environment a user has after `make install`: the venv's tools first on PATH."""
    env = dict(os.environ)
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
        DVC_NO_ANALYTICS="1",
        GIT_AUTHOR_NAME="minigen tests", GIT_AUTHOR_EMAIL="tests@minigen.invalid",
        GIT_COMMITTER_NAME="minigen tests", GIT_COMMITTER_EMAIL="tests@minigen.invalid",
    )
    env.update(extra)
    return env


def run(*args: str, cwd: Path, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
    """Run a tool as a user would type it, with its output captured (stdout + stderr)."""
    proc = subprocess.run(list(args), cwd=cwd, env=tool_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"`{' '.join(args)}` failed ({proc.returncode}):\n{proc.stdout[-6000:]}")
    return proc


def init_git_dvc(path: Path) -> None:
    """`git init` + `dvc init` + a first commit of the pipeline files, as in a clone."""
    run("git", "init", "-q", "-b", "main", cwd=path)
    run("dvc", "init", "-q", cwd=path)
    run("dvc", "config", "core.analytics", "false", cwd=path)
    run("git", "add", "-A", cwd=path)
    run("git", "commit", "-q", "-m", "pipeline", cwd=path)


# Snakemake's own view of the planned jobs, through its Python API, as JSON. It runs in a
# subprocess because the API changes the working directory.
_SNAKEMAKE_JOBS = """
import json
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import DAGSettings, OutputSettings, Quietness, ResourceSettings

with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
    workflow_api = api.workflow(resource_settings=ResourceSettings(cores=1, resources={"gpu": 1}),
                                snakefile=Path("Snakefile"), workdir=Path("."))
    workflow_api.dag(DAGSettings(forceall=True)).execute_workflow(executor="dryrun")
    jobs = [dict(rule=job.rule.name, wildcards=dict(job.wildcards.items()), input=list(job.input),
                 output=list(job.output), log=list(job.log), params=dict(job.params.items()),
                 shell=job.shellcmd, resources={k: v for k, v in job.resources.items()
                                                if not k.startswith("_") and k != "tmpdir"})
            for job in workflow_api._workflow.dag.jobs]
print(json.dumps(jobs))
"""


def snakemake_jobs(workdir: Path) -> list[dict]:
    """Every job `snakemake --forceall` would run in `workdir` (rule `all` left out)."""
    proc = subprocess.run([sys.executable, "-c", _SNAKEMAKE_JOBS], cwd=workdir, env=tool_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [job for job in json.loads(proc.stdout.strip().splitlines()[-1]) if job["rule"] != "all"]


def dvc_stages(workdir: Path) -> dict[str, dict]:
    """dvc.yaml's stages as DVC resolves them (foreach expanded), by name."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    stages = {}
    with Repo(str(workdir)) as repo:
        for stage in repo.index.stages:
            params = [name for dep in stage.deps if isinstance(dep, ParamsDependency) for name in dep.params]
            stages[stage.name] = dict(
                cmd=stage.cmd,
                deps=[dep.def_path for dep in stage.deps if not isinstance(dep, ParamsDependency)],
                params=params,
                outs=[out.def_path for out in stage.outs],
            )
    return stages
