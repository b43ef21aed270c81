"""The whole pipeline, as users drive it, on tiny settings of the embedded digits data:
Snakemake and DVC from nothing to the report, re-runs that do only what a change asks
for, and DVC experiments side by side (run now, or queued)."""

from __future__ import annotations

import base64
import contextlib
import csv

import json
import re
import shutil
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
    best = project / f"results/retrain/genome_{metrics['best_index']}/seed_{metrics['best_seed']}/model.safetensors"
    assert (report / "best_model.safetensors").read_bytes() == best.read_bytes()  # the DVC model artifact
    for i in range(top_k):
        assert json.loads((project / f"results/retrain/genome_{i}/seed_2809/metrics.json").read_text())["epochs"] == 1


def planned_jobs(project: Path, *args: str) -> dict[str, int]:
    """Snakemake's dry-run plan (of `args`: targets, options): jobs per rule."""
    out = run(*SNAKEMAKE, "-n", *args, cwd=project).stdout
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
    assert (project / "logs/retrain/genome_1/seed_2809.log").is_file()
    # Logs of a run whose output is no terminal hold one plain line per step, no bar frames.
    logs = {path.relative_to(project / "logs").as_posix(): path.read_text() for path in (project / "logs").rglob("*.log")}
    assert len(logs) == 7 and not [name for name, text in logs.items() if "\r" in text]
    assert re.search(r"round 0 gen 1 \(2/2\): .* 4 evaluated \(1 new\), \d+ trained; .* so far, round done",
                     logs["search.log"])
    assert re.search(r"genome 1 \(seed 2809\) epoch 1/1: .* so far, ETA 0 s", logs["retrain/genome_1/seed_2809.log"])
    assert_snakemake_report(project)

    assert planned_jobs(project) == {}
    with edited(project / "minigen/stages/report.py", "\n# a comment\n"):
        assert planned_jobs(project) == {"report": 1, "all": 1}  # the rule depends on its code
    # A setting re-runs the rules that read it and what follows them, nothing before.
    edit_params(project, "search", "p_op", 0.3)
    assert planned_jobs(project) == {"search": 1, "collect": 1, "retrain": 2, "report": 1, "all": 1}


def assert_snakemake_report(project: Path) -> None:
    """`snakemake --report`: the table, every figure and each job's runtime, with captions."""
    run("snakemake", "--report", "report.html", cwd=project)
    page = (project / "report.html").read_text()
    results = json.loads(re.search(r"var results = (\{.*?\});\n", page).group(1))
    figures = {f"results/report/{name}.png" for name in
               ("fig4_generations", "search_curve", "mini_vs_full", "retrain_curves")}
    runtimes = {f"benchmarks/{job}.tsv" for job in
                ("download", "sample", "search", "collect", "report", "retrain/genome_0/seed_2809", "retrain/genome_1/seed_2809")}
    assert set(results) == {"results/report/table.html"} | figures | runtimes
    assert all(len(entry["caption"]) > 200 for entry in results.values())  # what it shows, how to read it
    assert "Kendall's tau" in results["results/report/mini_vs_full.png"]["caption"]
    table = base64.b64decode(results["results/report/table.html"]["data_uri"].split(",", 1)[1]).decode()
    assert "Table III" in table and table.count("<tr>") == 1 + tiny_params()["collect"]["top_k"]
    for name in figures:
        assert base64.b64decode(results[name]["data_uri"].split(",", 1)[1]).startswith(b"\x89PNG")
    assert float(results["benchmarks/search.tsv"]["labels"]["seconds"]) > 0


def test_snakemake_config_overrides_reach_minigen_or_are_refused(digits_project):
    project = digits_project
    search = ("snakemake", "search", *SNAKEMAKE[1:])  # the target before --resources' values
    run(*search, cwd=project)
    default = (project / "results/search/history.jsonl").read_text()

    out = run(*search, "--config", 'search={"p_op": 1.0}', cwd=project).stdout
    (used,) = re.findall(r"minigen search --params (\S+)", out)  # the merged config, not params.yaml
    assert yaml.safe_load((project / used).read_text())["search"]["p_op"] == 1.0  # a number, as in a params file
    assert (project / "results/search/history.jsonl").read_text() != default
    assert "rule download" not in out and "rule sample" not in out
    # What Snakemake recorded is what ran: the same setting from a file plans nothing, and
    # params.yaml's own value re-runs the search alone.
    (project / "p_op.yaml").write_text("search:\n  p_op: 1.0\n")
    assert planned_jobs(project, "search", "--configfile", "p_op.yaml") == {}
    assert planned_jobs(project, "search") == {"search": 1}

    refused = run(*search, "--config", 'search={"p_op": 1.5}', cwd=project, check=False)

    assert refused.returncode != 0
    errors = [line for line in refused.stdout.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "search.p_op must be a probability" in errors[0], refused.stdout
    assert "Building DAG" not in refused.stdout  # refused before any job was planned


def test_dvc_exp_run_set_reaches_minigen(project):
    run("dvc", "repro", "search", cwd=project)
    default = (project / "results/search/history.jsonl").read_text()
    run("dvc", "exp", "run", "search", "-S", "search.p_op=1.0", cwd=project)
    assert yaml.safe_load((project / "params.yaml").read_text())["search"]["p_op"] == 1.0
    assert (project / "results/search/history.jsonl").read_text() != default


def stale_stages(project: Path) -> set[str]:
    """The stages `dvc status` says have changed."""
    return set(json.loads(run("dvc", "status", "--json", cwd=project).stdout))


@contextlib.contextmanager
def edited(path: Path, addition: str):
    """`path` with `addition` appended, restored afterwards."""
    original = path.read_bytes()
    path.write_bytes(original + addition.encode())
    try:
        yield
    finally:
        path.write_bytes(original)


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([\w@-]+)'", output))


def test_dvc_repro_reruns_only_what_a_change_touches(project):
    first = run("dvc", "repro", cwd=project).stdout
    assert ran_stages(first) == {"download", "sample", "search", "collect", "retrain@0-2809", "retrain@1-2809", "report"}
    assert_report(project)
    plots = json.loads(run("dvc", "plots", "show", "--json", cwd=project).stdout)["data"]
    assert [row["best_accuracy"] for row in plots["results/search/generations.csv"][0]["content"]["data"]["values"]]
    for figure in ("fig4_generations", "search_curve", "retrain_curves", "mini_vs_full"):
        assert plots[f"results/report/{figure}.png"][0]["type"] == "image"
    # Data plots, which `dvc plots diff` overlays: mini against full accuracy, and each
    # retrain's curves in dvclive's layout.
    pairs = plots["results/report/mini_vs_full.csv"][0]["content"]["data"]["values"]
    assert [int(p["index"]) for p in pairs] == [0, 1]
    for i in (0, 1):
        for metric in ("train/loss", "train/accuracy", "test/accuracy"):
            values = plots[f"results/retrain/genome_{i}/seed_2809/dvclive/plots/metrics/{metric}.tsv"][0]["content"]["data"]["values"]
            assert [int(v["step"]) for v in values] == [1]


    second = run("dvc", "repro", cwd=project).stdout
    assert ran_stages(second) == set()
    assert "didn't change, skipping" in second

    # Stages depend on the settings and the code that decide their result, and on nothing else.
    edit_params(project, "search", "workers", 2)  # speed only
    assert stale_stages(project) == set()
    with edited(project / "minigen/stages/report.py", "\n# a comment\n"):
        assert stale_stages(project) == {"report"}
    with edited(project / "minigen/training/loop.py", "\nEDITED = True\n"):
        assert stale_stages(project) == {"search", "retrain@0-2809", "retrain@1-2809"}
    # A second retrain seed adds a job per genome (and the report that reads them), nothing else.
    edit_params(project, "retrain", "seeds", [2809, 7])
    assert stale_stages(project) == {"retrain@0-7", "retrain@1-7", "report"}
    edit_params(project, "retrain", "seeds", [2809])

    edit_params(project, "search", "p_op", 0.3)
    third = run("dvc", "repro", cwd=project).stdout
    assert {"search"} <= ran_stages(third)
    assert not ran_stages(third) & {"download", "sample"}
    assert "Data and pipelines are up to date" in run("dvc", "status", cwd=project).stdout


def cost_of(project: Path, data: dict) -> dict:
    """An experiment's results/search/cost.json: an output, not a metric `dvc exp show` lists."""
    import dvc.api

    return json.loads(dvc.api.read("results/search/cost.json", repo=str(project), rev=data["rev"]))


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_push_then_pull_in_a_fresh_clone_restores_data_and_results(project, tmp_path):
    run("dvc", "repro", cwd=project)
    remote = tmp_path / "remote"
    run("dvc", "remote", "add", "-d", "storage", str(remote), cwd=project)  # README, "Sharing results"
    run("git", "add", "-A", cwd=project)
    run("git", "commit", "-q", "-m", "results", cwd=project)
    # The mini set's version, as `gto register mini-cifar10` would tag it.
    run("git", "tag", "-a", "mini-cifar10@v1.0.0", "-m", "Mini CIFAR10", cwd=project)
    run("dvc", "push", cwd=project)

    clone = tmp_path / "clone"
    run("git", "clone", "-q", str(project), str(clone), cwd=tmp_path)
    run("dvc", "pull", cwd=clone)
    for folder in ("data/mini", "data/raw", "results"):
        assert tree_bytes(clone / folder) == tree_bytes(project / folder), folder
    assert "up to date" in run("dvc", "status", cwd=clone).stdout

    # The README's command for the artifact, with the remote as the only copy of the data.
    shutil.rmtree(project / ".dvc" / "cache")
    run("dvc", "artifacts", "get", str(project), "mini-cifar10", "-o", "mini", cwd=tmp_path)
    assert tree_bytes(tmp_path / "mini") == tree_bytes(project / "data" / "mini")


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
    # `dvc plots diff` overlays two experiments' retrain curves (dvclive's layout).
    diff = json.loads(run("dvc", "plots", "diff", "p-op-low", "p-op-high", "--json", cwd=project).stdout)["data"]
    curve = diff["results/retrain/genome_0/seed_2809/dvclive/plots/metrics/test/accuracy.tsv"][0]
    assert set(curve["revisions"]) == {"p-op-low", "p-op-high"}

    assert low[0]["search"]["p_op"] == 0.3 and high[0]["search"]["p_op"] == 0.9
    assert ramp[0]["search"]["depth_ramp"] is True
    for params, search, report in (low, high, ramp):
        assert 0.0 <= search["best_accuracy"] <= 1.0 and report

    # Generation 0 is the same for all three (same seed): later runs found it in the cache.
    for name in ("p-op-high", "queued-ramp"):
        cost = cost_of(project, shown[name])
        assert cost["trained"] < cost["evaluations"]
    # metrics hold what defines a result, the same in identical runs; cost.json the rest.
    assert set(low[1]) == {"best_accuracy", "best_fitness", "winners"}
