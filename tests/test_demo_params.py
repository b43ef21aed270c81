"""`make demo`'s settings: the paper's keys with small values, offline, on the CPU, and a
run in demo/ that leaves the project's params.yaml and results alone."""

from __future__ import annotations

import re

import yaml
from workflows import ROOT, paper_params, run

from minigen import settings as P
from minigen.stages.download import DIGITS_TEST_EVERY, digits_arrays

DEMO = ROOT / "demo"


def keys(tree: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in tree.items():
        out |= keys(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}"}
    return out


def demo_params() -> dict:
    return yaml.safe_load((DEMO / "params.yaml").read_text())


def test_demo_sets_every_key_the_paper_params_set():
    assert keys(demo_params()) == keys(paper_params())
    P.load(DEMO / "params.yaml")  # valid


def test_demo_is_offline_cpu_and_small():
    demo, paper = demo_params(), paper_params()
    assert demo["data"]["dataset"] == "digits"
    assert demo["search"]["device"] == demo["retrain"]["device"] == "cpu"
    for section, key in [("search", "population"), ("search", "generations"), ("search", "epochs"),
                         ("search", "max_rounds"), ("collect", "top_k"), ("retrain", "epochs")]:
        assert demo[section][key] < paper[section][key], f"{section}.{key}"


def test_demo_asks_for_no_more_images_than_digits_has():
    _, labels = digits_arrays()
    smallest_class = min((labels == c).sum() for c in range(10))
    test_per_class = smallest_class // DIGITS_TEST_EVERY
    demo = demo_params()["data"]
    assert demo["test_per_class"] <= test_per_class
    assert demo["train_per_class"] <= smallest_class - test_per_class - 1


def test_demo_runs_in_its_own_folder_with_its_own_params():
    # --forceall: plan every job even where an earlier `make demo` left results.
    out = run("snakemake", "-n", "--forceall", "--nolock", "--directory", "demo", "--cores", "2",
              "--resources", "gpu=1", cwd=ROOT).stdout
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out[out.index("Job stats:"):], flags=re.M))
    assert int(counts["retrain"]) == demo_params()["collect"]["top_k"] * len(demo_params()["retrain"]["seeds"])
    make = run("make", "-n", "demo", cwd=ROOT).stdout
    assert re.search(r"snakemake --directory demo --cores \S+", make)
    ignored = (DEMO / ".gitignore").read_text().split()
    assert {"/data/", "/results/", "/logs/", "/.snakemake/"} <= set(ignored)
