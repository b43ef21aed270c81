"""The whole pipeline, as users drive it, on tiny settings of the embedded digits data:
Snakemake and DVC from nothing to the report, re-runs that do only what a change asks
for, and DVC experiments side by side (run now, or queued)."""

from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path

import pytest
import yaml
from workflows import archive_params, copy_pipeline, init_git_dvc, run, tiny_params, write_params

pytestmark = pytest.mark.slow

SNAKEMAKE = ("snakemake", "--cores", "2", "--resources", "gpu=1")


@pytest.fixture
def digits_project(tmp_path) -> Path:
    return copy_pipeline(tmp_path / "project", tiny_params())


@pytest.fixture
def project(tmp_path) -> Path:
    """A git + DVC project on a tiny archive: DVC's tests run the pipeline many times."""
    path = copy_pipeline(tmp_path / "project", archive_params(tmp_path / "archive"))
    init_git_dvc(path)
    return path


def edit_params(project: Path, section: str, key: str, value) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params[section][key] = value
    write_params(project / "params.yaml", params)


def assert_report(project: Path) -> None:
    """The report of a finished run: a row per collected genome, figures, metrics."""
    top_k = tiny_params()["collect"]["top_k"]
    report = project / "results" / "report"
    with open(report / "table.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == top_k
    assert (report / "table.md").read_text().strip()
    for png in report.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(report.glob("*.png"))
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["genomes"] == top_k
    best = project / f"results/retrain/genome_{metrics['best_index']}/model.safetensors"
    assert (report / "best_model.safetensors").read_bytes() == best.read_bytes()  # the DVC model artifact
    for i in range(top_k):
        assert json.loads((project / f"results/retrain/genome_{i}/metrics.json").read_text())["epochs"] == 1


def planned_jobs(project: Path) -> dict[str, int]:
    """Snakemake's dry-run plan: jobs per rule."""
    out = run(*SNAKEMAKE, "-n", cwd=project).stdout
    if "Nothing to be done" in out:
        return {}
    table = out[out.index("Job stats:"):]
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M) if rule != "total"}


def test_snakemake_from_nothing_to_the_report_on_the_embedded_digits(digits_project):
    project = digits_project
    out = run(*SNAKEMAKE, cwd=project).stdout
    assert_report(project)
    # The stage's own output reached the terminal and its log.
    assert "minigen search --params params.yaml" in out
    for stage in ("download", "sample", "search", "collect", "report"):
        assert (project / "logs" / f"{stage}.log").is_file()
    assert (project / "logs/retrain/genome_1.log").is_file()

    assert planned_jobs(project) == {}
    # A setting re-runs the rules that read it and what follows them, nothing before.
    edit_params(project, "search", "p_op", 0.3)
    assert planned_jobs(project) == {"search": 1, "collect": 1, "retrain": 2, "report": 1, "all": 1}


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([\w@]+)'", output))


def test_dvc_repro_reruns_only_what_a_change_touches(project):
    first = run("dvc", "repro", cwd=project).stdout
    assert ran_stages(first) == {"download", "sample", "search", "collect", "retrain@0", "retrain@1", "report"}
    assert_report(project)
    plots = json.loads(run("dvc", "plots", "show", "--json", cwd=project).stdout)["data"]
    assert [row["best_accuracy"] for row in plots["results/search/generations.csv"][0]["content"]["data"]["values"]]
    for figure in ("fig4_generations", "retrain_curves", "mini_vs_full"):
        assert plots[f"results/report/{figure}.png"][0]["type"] == "image"

    second = run("dvc", "repro", cwd=project).stdout
    assert ran_stages(second) == set()
    assert "didn't change, skipping" in second

    edit_params(project, "search", "p_op", 0.3)
    third = run("dvc", "repro", cwd=project).stdout
    assert {"search"} <= ran_stages(third)
    assert not ran_stages(third) & {"download", "sample"}
    assert "Data and pipelines are up to date" in run("dvc", "status", cwd=project).stdout


def experiments(shown: list) -> dict[str, dict]:
    """`dvc exp show --json`: each named experiment's data (params and metrics)."""
    found = {}

    def walk(node):
        if isinstance(node, dict):
            if node.get("name") and isinstance(node.get("data"), dict) and node["data"].get("params"):
                found[node["name"]] = node["data"]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(shown)
    return found


def exp_values(data: dict) -> tuple[dict, dict, dict]:
    params = data["params"]["params.yaml"]["data"]
    search = data["metrics"]["results/search/metrics.json"]["data"]
    report = data["metrics"]["results/report/metrics.json"]["data"]
    return params, search, report


def test_experiments_side_by_side_and_queued_share_the_cache(project):
    run("dvc", "exp", "run", "-n", "p-op-low", "-S", "search.p_op=0.3", cwd=project)
    run("dvc", "exp", "run", "-n", "p-op-high", "-S", "search.p_op=0.9", cwd=project)
    # Queued experiments run in temporary copies; the evaluation cache is the user's
    # (MINIGEN_CACHE_DIR, inherited), so they reuse what the runs above trained.
    run("dvc", "exp", "run", "--queue", "-n", "queued-ramp", "-S", "search.depth_ramp=true", cwd=project)
    run("dvc", "queue", "start", cwd=project)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = run("dvc", "queue", "status", cwd=project).stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            break
        time.sleep(3)
    assert re.search(r"queued-ramp.*Success", status), status

    shown = experiments(json.loads(run("dvc", "exp", "show", "--json", cwd=project).stdout))
    assert {"p-op-low", "p-op-high", "queued-ramp"} <= set(shown)
    low, high, ramp = (exp_values(shown[name]) for name in ("p-op-low", "p-op-high", "queued-ramp"))
    assert low[0]["search"]["p_op"] == 0.3 and high[0]["search"]["p_op"] == 0.9
    assert ramp[0]["search"]["depth_ramp"] is True
    for params, search, report in (low, high, ramp):
        assert search["evaluations"] >= 1 and report
    # Generation 0 is the same for all three (same seed): later runs found it in the cache.
    assert high[1]["trained"] < high[1]["evaluations"]
    assert ramp[1]["trained"] < ramp[1]["evaluations"]
