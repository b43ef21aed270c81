"""The tiny pipeline (the tests' digits settings, on a CIFAR-format archive of 100 training
images, so that the retrains take seconds) on a real one-node SLURM cluster, through
`snakemake --profile profiles/slurm` (Snakemake's official SLURM executor plugin): every
job runs as a SLURM job
(SLURM lists it as finished, and the training stages record its SLURM_JOB_ID), the two
retrains run at once on the two different cards SLURM gave them, and every result is byte
for byte that of a local run. In CI (CI=true) a missing SLURM fails the test; elsewhere
it is skipped with the reason (`.ci/install-slurm.sh` installs what it needs)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from slurm_cluster import Cluster, missing
from workflows import archive_params, copy_pipeline, tool_env

pytestmark = pytest.mark.slow

STAGES = {"download": 1, "sample": 1, "search": 1, "collect": 1, "retrain": 2, "report": 1}
# Faster status checks than a real cluster wants: the plugin's first after 1 s. squeue,
# because this cluster has no accounting database (slurmdbd) for sacct to ask.
SLURM_RUN = ("snakemake", "--profile", "profiles/slurm", "--slurm-status-command", "squeue",
             "--slurm-init-seconds-before-status-checks", "1", "--slurm-no-account",
             "--slurm-keep-successful-logs", "--latency-wait", "5")
LOCAL_RUN = ("snakemake", "--cores", "2", "--resources", "gpu=1")
# Where it ran and how long it took: all that may differ between two runs' outputs.
VOLATILE = ("seconds", "placement")
RECORDS = ("cost.json", "metrics.json")  # JSON files that may hold them
ACCOUNTS = ("checklist.md",)  # the report's account of the run: its hardware and hours


def unavailable() -> str | None:
    """Why this machine cannot run a SLURM cluster, or None."""
    if os.name != "posix" or not hasattr(os, "geteuid"):
        return "SLURM needs Linux"
    if missing():
        return f"SLURM is not installed (missing {', '.join(missing())}; see .ci/install-slurm.sh)"
    if os.geteuid() != 0:
        return "the test cluster's daemons need root (munged runs as the munge user, slurmd starts jobs)"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return 'the SLURM executor plugin is not installed (pip install -e ".[slurm]")'
    return None


@pytest.fixture(scope="module")
def cluster():
    reason = unavailable()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the SLURM test, but {reason}")
        pytest.skip(reason)
    # Not under pytest's tmp_path: its 0700 parents would keep the munge user out.
    root = Path(tempfile.mkdtemp(prefix="minigen-slurm-"))
    cluster = Cluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def start(command: tuple[str, ...], cwd: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen, timeout: float = 600) -> str:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"`{' '.join(process.args)}` failed ({process.returncode}):\n{out[-8000:]}"
    return out


def submitted_jobs(out: str) -> dict[str, list[str]]:
    """SLURM job ids by rule, from the plugin's "submitted with SLURM jobid" lines."""
    jobs: dict[str, list[str]] = {}
    for job_id, rule in re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/rule_(\w+?)/", out):
        jobs.setdefault(rule, []).append(job_id)
    return jobs


def slurm_jobs(cluster: Cluster) -> dict[str, dict]:
    """What SLURM itself says about every job it ran: state, the plugin's comment, times."""
    proc = subprocess.run(["squeue", "-h", "--states=all", "-o", "%i|%T|%k|%S|%e"], env=cluster.env(),
                          capture_output=True, text=True, check=True)
    rows = [line.split("|") for line in proc.stdout.splitlines()]
    return {row[0]: {"state": row[1], "comment": row[2], "start": row[3], "end": row[4]} for row in rows}


def outputs(project: Path) -> dict[str, bytes | dict]:
    """Every file of data/ and results/ (hidden lock files aside); JSON records without the
    timings and placement."""
    files = {}
    found = (p for folder in ("data", "results") for p in (project / folder).rglob("*"))
    for path in sorted(p for p in found if p.is_file() and not p.name.startswith(".")):
        name = str(path.relative_to(project))
        if path.name in ACCOUNTS:
            files[name] = "an account of the run"  # present in both; its hours and cards differ
        elif path.name in RECORDS:
            files[name] = {k: v for k, v in json.loads(path.read_text()).items() if k not in VOLATILE}
        else:
            files[name] = path.read_bytes()
    return files


def placement(folder: Path) -> dict:
    """Where a training stage ran, as it recorded it (D.Placement.record)."""
    for name in RECORDS:
        if (folder / name).is_file() and "placement" in json.loads((folder / name).read_text()):
            return json.loads((folder / name).read_text())["placement"]
    raise AssertionError(f"no placement recorded in {folder}")


def test_the_pipeline_on_slurm_gives_the_local_results(cluster, tmp_path):
    params = archive_params(tmp_path / "archive")
    slurm_project = copy_pipeline(tmp_path / "slurm", params)
    local_project = copy_pipeline(tmp_path / "local", params)
    # Each run its own evaluation cache: the SLURM jobs train everything themselves.
    local = start(LOCAL_RUN, local_project, tool_env(MINIGEN_CACHE_DIR=str(tmp_path / "cache-local")))
    on_slurm = start(SLURM_RUN, slurm_project, cluster.env(tool_env(MINIGEN_CACHE_DIR=str(tmp_path / "cache-slurm"))))
    out = finish(on_slurm)
    finish(local)

    # Every job of the pipeline was a SLURM job, and SLURM saw each one finish.
    jobs = submitted_jobs(out)
    assert {rule: len(ids) for rule, ids in jobs.items()} == STAGES, out[-4000:]
    known = slurm_jobs(cluster)
    for rule, ids in jobs.items():
        for job_id in ids:
            assert known[job_id]["state"] == "COMPLETED", (rule, known[job_id])
            assert known[job_id]["comment"].startswith(f"rule_{rule}"), known[job_id]
            assert list((slurm_project / ".snakemake" / "slurm_logs").rglob(f"{job_id}.log")), job_id

    # The training stages recorded their own SLURM job in their log and metrics.
    search = placement(slurm_project / "results/search")
    assert [search["slurm_job_id"]] == jobs["search"]
    assert f"SLURM job {search['slurm_job_id']}" in (slurm_project / "logs/search.log").read_text()
    retrains = [placement(slurm_project / f"results/retrain/genome_{i}/seed_2809") for i in range(2)]
    assert sorted(r["slurm_job_id"] for r in retrains) == sorted(jobs["retrain"])
    for i, where in enumerate(retrains):
        assert f"SLURM job {where['slurm_job_id']}" in (slurm_project / f"logs/retrain/genome_{i}/seed_2809.log").read_text()

    # The two retrains ran at the same time, each on its own (fake) card from SLURM.
    a, b = (known[r["slurm_job_id"]] for r in retrains)
    assert a["start"] < b["end"] and b["start"] < a["end"], (a, b)
    assert {r["cuda_visible_devices"] for r in retrains} == {"0", "1"}

    # Byte for byte the local run's results.
    slurm_files, local_files = outputs(slurm_project), outputs(local_project)
    assert set(slurm_files) ^ set(local_files) == set()
    differ = [name for name in slurm_files if slurm_files[name] != local_files[name]]
    assert not differ, differ
    assert any(name.endswith("model.safetensors") for name in slurm_files)
