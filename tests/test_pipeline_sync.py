"""The Snakefile and dvc.yaml describe one pipeline: same stages, commands, inputs,
outputs and params. Snakemake's side comes from its own planned jobs, DVC's from its own
resolved stages, both on a copy of the project's workflow files with the paper's params."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import pytest
import yaml
from workflows import ROOT, copy_pipeline, dvc_stages, init_git_dvc, paper_params, run, snakemake_jobs

STAGES = ["download", "sample", "search", "collect", "retrain", "report"]
GPU_STAGES = {"search", "retrain"}
CUBLAS = "CUBLAS_WORKSPACE_CONFIG=:16:8 "
# The only lint we accept: rules run the project's installed `minigen` (make install),
# not per-rule conda environments or containers, so there is one environment to keep right.
ACCEPTED_LINTS = {"Specify a conda environment or container for each rule."}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    path = copy_pipeline(tmp_path_factory.mktemp("project"))
    run("dvc", "init", "--no-scm", "-q", cwd=path)
    return path


@pytest.fixture(scope="module")
def snakemake(project) -> dict[str, dict]:
    """Snakemake's jobs by DVC-style name: `retrain@3-2809` for the retrain job with i=3, seed=2809."""
    jobs = {}
    for job in snakemake_jobs(project):
        name = job["rule"] + ("@{i}-{seed}".format(**job["wildcards"]) if job["wildcards"] else "")
        assert name not in jobs
        jobs[name] = job
    return jobs


@pytest.fixture(scope="module")
def dvc(project) -> dict[str, dict]:
    return dvc_stages(project)


def under(child: str, parent: str) -> bool:
    child, parent = PurePosixPath(child), PurePosixPath(parent)
    return child == parent or parent in child.parents


def covers(paths: list[str], others: list[str]) -> bool:
    """Each path of either list is, lies under, or holds one of the other list's.

    One engine tracks a folder where the other names the files in it: DVC tracks
    results/genomes where Snakemake needs each genome_{i}.json, and Snakemake the folder
    results/retrain/genome_{i}/seed_{seed} where DVC names its files (so the plots can sit beside them).
    """
    def overlap(a: str, b: str) -> bool:
        return under(a, b) or under(b, a)

    return (all(any(overlap(o, p) for p in paths) for o in others)
            and all(any(overlap(o, p) for o in others) for p in paths))



def test_same_stages(snakemake, dvc):
    paper_top_k, paper_seed = paper_params()["collect"]["top_k"], paper_params()["seed"]
    expected = {s for s in STAGES if s != "retrain"} | {f"retrain@{i}-{paper_seed}" for i in range(paper_top_k)}
    assert set(snakemake) == expected
    assert set(dvc) == expected


def test_same_commands(snakemake, dvc):
    for name, job in snakemake.items():
        # Snakemake adds only the log: the command's output goes to the terminal and the log.
        (log,) = job["log"]
        suffix = f" 2>&1 | tee {log}"
        assert job["shell"].endswith(suffix), job["shell"]
        assert job["shell"][: -len(suffix)] == dvc[name]["cmd"], name


def test_commands_pass_only_paths():
    # Settings travel in params.yaml, never on a stage's command line.
    for stage in dvc_yaml()["stages"].values():
        cmd = stage["cmd"]
        options = re.findall(r"(--[a-z-]+)", cmd)
        assert set(options) <= {"--params", "--out", "--raw", "--mini", "--search", "--genomes", "--retrain"}, cmd
        assert "--params params.yaml" in cmd


def test_same_inputs_and_outputs(snakemake, dvc):
    for name, job in snakemake.items():
        assert covers(dvc[name]["deps"], job["input"]), (name, job["input"], dvc[name]["deps"])
        assert covers(dvc[name]["outs"], job["output"]), (name, job["output"], dvc[name]["outs"])


def test_same_params(snakemake, dvc):
    params = paper_params()
    for name, job in snakemake.items():
        settings = job["params"]["settings"]
        assert sorted(settings) == sorted(dvc[name]["params"]), name
        for dotted, value in settings.items():
            expected = params
            for key in dotted.split("."):
                expected = expected[key]
            assert value == expected, dotted


def test_training_stages_claim_the_gpu_and_pin_cublas(snakemake, dvc):
    for name, job in snakemake.items():
        stage = name.split("@")[0]
        gpu = stage in GPU_STAGES
        assert (job["resources"].get("gpu") == 1) is gpu, name
        assert dvc[name]["cmd"].startswith(CUBLAS) is gpu, name


def test_one_log_per_job(snakemake):
    logs = [log for job in snakemake.values() for log in job["log"]]
    assert len(logs) == len(snakemake) == len(set(logs))
    assert all(log.startswith("logs/") and log.endswith(".log") for log in logs)


def dvc_yaml() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())


def test_retrain_fans_out_over_the_collected_indices_and_the_seeds():
    params = paper_params()
    assert dvc_yaml()["stages"]["retrain"]["matrix"] == {"index": "${collect.indices}", "seed": "${retrain.seeds}"}
    assert params["collect"]["indices"] == list(range(params["collect"]["top_k"]))
    assert params["retrain"]["seeds"] == [params["seed"]]  # the paper: one retrain, with the pipeline's seed


def test_metrics_plots_and_artifacts_lie_in_stage_outputs(dvc):
    spec = dvc_yaml()
    outs = [out for stage in dvc.values() for out in stage["outs"]]
    plotted = []
    for plot in spec["plots"]:
        if isinstance(plot, str):
            plotted.append(plot)
            continue
        (plot_id, props), = plot.items()
        y = (props or {}).get("y")
        plotted += list(y) if isinstance(y, dict) else [plot_id]
    paths = spec["metrics"] + plotted + [a["path"] for a in spec["artifacts"].values()]
    for path in paths:
        # A file in an output, an output, or the folder of several (results/retrain).
        assert any(under(path, out) or under(out, path) for out in outs), path
    assert "results/search/metrics.json" in spec["metrics"]
    assert "results/report/metrics.json" in spec["metrics"]
    types = {a["path"]: a["type"] for a in spec["artifacts"].values()}
    assert types["data/mini"] == "dataset"
    assert "model" in types.values()


def test_paper_dry_run_plans_every_stage_once_and_ten_retrains(project):
    out = run("snakemake", "-n", "--cores", "1", "--resources", "gpu=1", cwd=project).stdout
    table = out[out.index("Job stats:"):]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M))
    assert counts == {"download": "1", "sample": "1", "search": "1", "collect": "1", "retrain": "10",
                      "report": "1", "all": "1", "total": "16"}


def test_dvc_stage_list_in_a_clone(tmp_path):
    path = copy_pipeline(tmp_path / "clone")
    init_git_dvc(path)
    listed = run("dvc", "stage", "list", "--name-only", cwd=path).stdout.split()
    assert listed == ["download", "sample", "search", "collect"] + [f"retrain@{i}-2809" for i in range(10)] + ["report"]


def test_snakemake_lint_says_nothing_unaccepted(project):
    proc = run("snakemake", "--lint", cwd=project, check=False)
    titles = {re.sub(r":$", "", line.strip()[2:]) for line in proc.stdout.splitlines()
              if line.startswith("    * ")}
    assert titles <= ACCEPTED_LINTS, proc.stdout


def test_two_retrain_seeds_plan_a_job_per_genome_and_seed_in_both_engines(tmp_path):
    path = copy_pipeline(tmp_path / "seeds")
    params = yaml.safe_load((path / "params.yaml").read_text())
    params["retrain"]["seeds"] = [2809, 7]
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run("dvc", "init", "--no-scm", "-q", cwd=path)
    retrains = sorted(name for name in dvc_stages(path) if name.startswith("retrain@"))
    assert retrains == sorted(f"retrain@{i}-{seed}" for i in range(10) for seed in (2809, 7))
    out = run("snakemake", "-n", "--cores", "1", "--resources", "gpu=1", cwd=path).stdout
    assert re.search(r"^retrain\s+20$", out, flags=re.M)
    assert "minigen retrain 3 7 --params params.yaml" in run("snakemake", "-n", "-p", "--cores", "1", cwd=path).stdout
