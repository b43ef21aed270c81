"""`minigen bench eval`, the authors'-loop baseline and the precision study run and report sane figures.

Only shapes and consistency are asserted: speed claims live in BENCHMARKS.md, never in tests.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from minigen.training import benchmark as B
from minigen.model import network

ROOT = Path(__file__).resolve().parents[1]
# Cheapest genome there is: depthwise input cell, pools at 8 channels.
TINY = [[".", 1, ["3*3 dconv", "3*3 dconv"]], [8, 1, ["3*3 maxpool", "3*3 avgpool"]],
        [8, 1, ["identity", "3*3 avgpool"]], [8, 1, ["3*3 avgpool", "3*3 maxpool"]], [8, 1, ["3*3 maxpool", "3*3 avgpool"]]]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_genome(tmp_path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    return path


def test_bench_eval_json_reports_consistent_positive_figures(cli, tiny_genome):
    proc = cli("bench", "eval", "--genome", tiny_genome, "--train-images", 12, "--epochs", 2,
               "--device", "cpu", "--test-images", 10, "--batch-size", 8, "--json", check=True)
    out = json.loads(proc.stdout)
    assert out["seconds"] > 0 and out["images_per_second"] > 0 and out["gflops"] > 0
    assert out["warmup_seconds"] > 0  # the warm-up ran, apart from `seconds`
    # Epoch stamps near 1.8e9 s are floats 2.4e-7 s apart: the difference is that exact.
    assert out["finished_at"] - out["started_at"] == pytest.approx(out["seconds"], abs=1e-6)
    assert out["images_per_second"] == pytest.approx(12 * 2 / out["seconds"])
    flops = network.complexity(TINY)["flops"]
    assert out["forward_flops_per_image"] == flops
    assert out["gflops"] == pytest.approx(3 * flops * 12 * 2 / out["seconds"] / 1e9)
    assert out["device_kind"] == "cpu" and out["torch"] == torch.__version__ and out["device"]
    assert out["precision"] == "fp32" and out["batch_size"] == 8
    assert 0.0 <= out["test_accuracy"] <= 1.0 and out["peak_host_mb"] > 0


def test_bench_eval_text_output_and_no_warmup(cli, tiny_genome):
    proc = cli("bench", "eval", "--genome", tiny_genome, "--train-images", 4, "--epochs", 1, "--batch-size", 4,
               "--device", "cpu", "--test-images", 4, "--no-warmup", check=True)
    assert "images/s" in proc.stdout and "GFLOP/s" in proc.stdout
    assert "warm-up seconds   0.000" in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["--train-images", "0", "--epochs", "1"], "--train-images must be a positive integer"),
    (["--train-images", "8", "--epochs", "1", "--device", "tpu"], "unknown device"),
])
def test_bench_eval_bad_input_is_one_line(cli, tiny_genome, args, message):
    proc = cli("bench", "eval", "--genome", tiny_genome, *args)
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_bench_eval_missing_genome_is_one_line(cli, tmp_path):
    proc = cli("bench", "eval", "--genome", tmp_path / "nope.json", "--train-images", 8, "--epochs", 1)
    assert proc.returncode == 2 and "not found" in proc.stderr and "Traceback" not in proc.stderr


def test_random_splits_are_seeded_and_balanced():
    a_train, a_test = B.random_splits(30, 20, seed=5)
    b_train, _ = B.random_splits(30, 20, seed=5)
    assert torch.equal(a_train.x, b_train.x) and torch.equal(a_train.y, b_train.y)
    assert a_train.x.dtype == torch.uint8 and a_train.x.shape == (30, 3, 32, 32)
    assert torch.bincount(a_test.y, minlength=10).tolist() == [2] * 10


def test_original_loop_runs_and_prints_json(tiny_genome):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "original_loop.py"), "--genome", str(tiny_genome),
         "--train-images", "16", "--epochs", "2", "--test-images", "10", "--json"],
        capture_output=True, text=True, timeout=300, check=True,
    )
    out = json.loads(proc.stdout)
    assert out["loop"] == "original" and out["seconds"] > 0 and out["gflops"] > 0
    assert out["images_per_second"] == pytest.approx(32 / out["seconds"])
    assert 0.0 <= out["test_accuracy"] <= 1.0


def test_original_loop_has_the_authors_head():
    original = load_script("original_loop")
    torch.manual_seed(0)
    net = original.AuthorsNet(TINY).eval()
    assert isinstance(net.pool, torch.nn.AdaptiveAvgPool2d)
    assert isinstance(net.classifier[-1], torch.nn.Softmax)
    with torch.no_grad():
        probs = net(torch.randn(3, 3, 32, 32))
    assert probs.shape == (3, 10)
    assert torch.allclose(probs.sum(1), torch.ones(3)) and (probs >= 0).all()


def test_original_loop_trains_plain_convs_with_the_native_backward():
    original = load_script("original_loop")
    genome = [[".", 1, ["3*3 dconv", "3*3 dconv"]], [8, 1, ["3*3 dil conv", "3*3 maxpool"]],
              [8, 1, ["3*3 avgpool", "3*3 maxpool"]], [8, 1, ["3*3 avgpool", "3*3 maxpool"]], [8, 1, ["3*3 maxpool", "3*3 avgpool"]]]
    net = original.AuthorsNet(genome)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert any(m.dilation == (2, 2) for m in convs)
    assert {type(m) for m in convs} == {torch.nn.Conv2d}
    out = net(torch.randn(2, 3, 32, 32))
    nodes, stack = set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None and type(node).__name__ not in nodes:
            nodes.add(type(node).__name__)
            stack.extend(next_fn for next_fn, _ in node.next_functions)
    assert "ConvolutionBackward0" in nodes and "DilatedDepthwiseConvBackward" not in nodes


def test_precision_rank_summary_on_known_rankings():
    study = load_script("precision_rank")
    rows = [{"genome_id": str(i), "fp32": acc, "bf16": acc2, "fp32_seconds": 2.0, "bf16_seconds": 1.0}
            for i, (acc, acc2) in enumerate([(0.1, 0.1), (0.2, 0.3), (0.3, 0.2), (0.4, 0.4)])]
    summary = study.summarize(rows, ["fp32", "bf16"])["bf16"]
    assert summary["kendall_tau"]["tau"] == pytest.approx(4 / 6)  # 5 concordant, 1 discordant pair
    assert summary["same_best_genome"] and summary["speedup"] == pytest.approx(2.0)
    assert summary["mean_abs_accuracy_difference"] == pytest.approx(0.05)


def test_precision_rank_draws_the_same_valid_genomes_for_a_seed():
    study = load_script("precision_rank")
    from minigen.space import genome as G

    space = G.Space(channels=(8, 16))
    genomes = study.draw_genomes(6, space, 3)
    assert genomes == study.draw_genomes(6, space, 3) != study.draw_genomes(6, space, 4)
    assert len(genomes) == 6 and all(G.parse(g) == g for g in genomes)
