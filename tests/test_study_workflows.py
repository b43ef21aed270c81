"""The study in both engines: `snakemake study` (workflow/rules/study.smk) and
study/dvc.yaml fan out to one search and one retrain per arm x seed and one report, with
the same commands, inputs, outputs and params; neither touches the paper's pipeline."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from test_pipeline_sync import covers
from workflows import ROOT, copy_pipeline, dvc_stages, paper_params, run, tool_env

from minigen import pipeline

ARMS_ROOT = "results/study/arms"
STUDY = paper_params()["study"]
COMPARED = [arm for arm in STUDY["arms"] if arm != STUDY["reference"]]

# Snakemake's planned jobs for a target, through its API (as workflows.snakemake_jobs).
_JOBS = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import DAGSettings, OutputSettings, Quietness, ResourceSettings

with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
    workflow_api = api.workflow(resource_settings=ResourceSettings(cores=1, resources={"gpu": 1}),
                                snakefile=Path("Snakefile"), workdir=Path("."))
    workflow_api.dag(DAGSettings(targets={sys.argv[1]}, forceall=True)).execute_workflow(executor="dryrun")
    jobs = [dict(rule=job.rule.name, wildcards=dict(job.wildcards.items()), input=list(job.input),
                 output=list(job.output), log=list(job.log), params=dict(job.params.items()),
                 shell=job.shellcmd, resources={k: v for k, v in job.resources.items() if k == "gpu"})
            for job in workflow_api._workflow.dag.jobs]
print(json.dumps(jobs))
"""


def job_name(job: dict) -> str:
    """DVC's name for a Snakemake job: study_search@random-2809, study_reference@2809."""
    wildcards = job["wildcards"]
    keys = [wildcards[k] for k in ("arm", "seed") if k in wildcards]
    return job["rule"] + (f"@{'-'.join(keys)}" if keys else "")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    path = copy_pipeline(tmp_path_factory.mktemp("project"))
    shutil.copytree(ROOT / "study", path / "study")
    run("dvc", "init", "--no-scm", "-q", cwd=path)
    return path


@pytest.fixture(scope="module")
def snakemake(project) -> dict[str, dict]:
    proc = subprocess.run([sys.executable, "-c", _JOBS, "study"], cwd=project, env=tool_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    jobs = json.loads(proc.stdout.strip().splitlines()[-1])
    return {job_name(job): job for job in jobs if job["rule"].startswith("study_")}


@pytest.fixture(scope="module")
def dvc(project) -> dict[str, dict]:
    return {name: stage for name, stage in dvc_stages(project).items() if name.startswith("study_")}


def expected_jobs() -> set[str]:
    seeds = STUDY["seeds"]
    return ({f"study_reference@{s}" for s in seeds} | {f"study_search@{a}-{s}" for a in COMPARED for s in seeds}
            | {f"study_retrain@{a}-{s}" for a in STUDY["arms"] for s in seeds} | {"study_report"})


def test_both_engines_fan_out_to_every_arm_and_seed(snakemake, dvc):
    assert len(STUDY["arms"]) == 3 and len(STUDY["seeds"]) == 3
    assert set(snakemake) == set(dvc) == expected_jobs()


def test_snakemake_dry_run_of_the_study_counts_arms_times_seeds(project):
    out = run("snakemake", "study", "-n", "--cores", "1", "--resources", "gpu=1", cwd=project).stdout
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out[out.index("Job stats:"):], flags=re.M))
    seeds, arms = len(STUDY["seeds"]), len(STUDY["arms"])
    assert {k: int(v) for k, v in counts.items() if k.startswith("study")} == {
        "study_reference": seeds, "study_search": (arms - 1) * seeds, "study_retrain": arms * seeds,
        "study_report": 1, "study": 1}
    assert not {"search", "collect", "retrain", "report", "all"} & set(counts)  # the study needs data only


def test_dvc_stage_list_names_every_job_and_repro_of_the_paper_skips_them(project):
    listed = run("dvc", "stage", "list", "--name-only", "study/dvc.yaml", cwd=project).stdout.split()
    assert {name.split(":")[-1] for name in listed} == expected_jobs()
    main = run("dvc", "stage", "list", "--name-only", cwd=project).stdout.split()
    assert not [name for name in main if "study" in name]  # `dvc repro` runs the paper only


def test_same_commands_params_inputs_and_outputs(snakemake, dvc):
    for name, job in snakemake.items():
        (log,) = job["log"]
        assert job["shell"] == f"{dvc[name]['cmd']} 2>&1 | tee {log}", name
        assert sorted(job["params"]["settings"]) == sorted(dvc[name]["params"]), name
        assert covers(dvc[name]["deps"], job["input"]), (name, job["input"], dvc[name]["deps"])
        assert covers(dvc[name]["outs"], job["output"]), (name, job["output"], dvc[name]["outs"])
        assert (job["resources"].get("gpu") == 1) is (name != "study_report"), name


def test_every_arm_and_seed_writes_its_own_folder(snakemake):
    for name, job in snakemake.items():
        if name == "study_report":
            continue
        arm = job["wildcards"].get("arm", STUDY["reference"])
        folder = f"{ARMS_ROOT}/{arm}/seed_{job['wildcards']['seed']}/"
        assert all(out.startswith(folder) for out in job["output"]), name
    assert all(name != "study_search@" + STUDY["reference"] for name in snakemake)


def test_study_dvc_yaml_lists_exactly_the_studys_code_and_params():
    stages = yaml.safe_load((ROOT / "study" / "dvc.yaml").read_text())["stages"]
    assert tuple(stages) == pipeline.STUDY_STAGES == tuple(pipeline.STUDY_CODE) == tuple(pipeline.STUDY_PARAMS)
    assert all((ROOT / path).exists() for paths in pipeline.STUDY_CODE.values() for path in paths)
    arm = {"study_reference": "${study.reference}"}
    for name, stage in stages.items():
        assert stage["wdir"] == ".."
        code = [dep for dep in stage["deps"] if dep.startswith("minigen/")]
        assert tuple(code) == pipeline.STUDY_CODE[name], name
        expected = tuple(p.format(arm=arm.get(name, "${item.arm}")) for p in pipeline.STUDY_PARAMS[name])
        assert tuple(stage["params"]) == expected, name
        assert "--params params.yaml" in stage["cmd"]


def test_study_demo_is_offline_cpu_small_and_in_its_own_folder():
    from test_demo_params import keys

    from minigen import settings as P

    demo = yaml.safe_load((ROOT / "demo-study" / "params.yaml").read_text())
    assert keys(demo) == keys(paper_params())
    P.load(ROOT / "demo-study" / "params.yaml")  # valid
    assert demo["data"]["dataset"] == "digits" and demo["search"]["device"] == demo["retrain"]["device"] == "cpu"
    assert demo["study"]["retrain_epochs"] < STUDY["retrain_epochs"] and len(demo["study"]["seeds"]) == 3
    make = run("make", "-n", "study-demo", cwd=ROOT).stdout
    assert re.search(r"snakemake study --directory demo-study --cores \S+", make)
    ignored = (ROOT / "demo-study" / ".gitignore").read_text().split()
    assert {"/data/", "/results/", "/logs/", "/.snakemake/"} <= set(ignored)
