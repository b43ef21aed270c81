"""`minigen retrain`: both recipes learn, kill -9 resumes exactly, bad input ends in one line."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from archives import params_with
from safetensors.torch import load_file

from minigen.store import formats
from minigen.data import cifar_format
from minigen import settings as P
from minigen.stages import download, sample
from minigen.data import raw as raw_data
from minigen.model import network
from minigen.store import integrity, paths
from minigen.training import device as D
from minigen.space import genome as G
from minigen.stages import retrain as R
from minigen.training import loop as T
from minigen.training.benchmark import random_splits
from minigen.errors import UserError

# Small and quick on a CPU, yet it learns the digits in a few epochs (1x7-7x1 convs see far).
SMALL_GENOME = [
    [".", 1, ["3*3 conv", "3*3 conv"]],
    [16, 1, ["1*7-7*1 conv", "3*3 maxpool"]],
    [16, 1, ["identity", "1*7-7*1 conv", "3*3 avgpool"]],
    [16, 1, ["1*7-7*1 conv", "3*3 maxpool"]],
    [16, 1, ["1*7-7*1 conv", "3*3 avgpool"]],
]
# The dev machine is shared by many processes: one thread avoids OpenMP oversubscription.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
SEED = P.PAPER.seed  # the retrain's seed when retrain.seeds is left out: [seed]


def mini_of(raw_dir: Path) -> Path:
    """The mini set beside `raw_dir` (`minigen sample`'s, 2 train and 1 test image per class)."""
    mini = raw_dir.parent / "mini"
    if not mini.is_dir():
        sample.sample(params_with(data={"dataset": "digits", "train_per_class": 2, "test_per_class": 1}),
                      raw_dir, mini)
    return mini


def retrained(root: Path, out: str = "results/retrain", index: int = 0, seed: int = SEED) -> Path:
    return formats.retrain_dir(root / out, index, seed)


def make_digits_raw(raw_dir: Path, train_per_class: int, test_per_class: int) -> Path:
    """The embedded digits (upscaled to 32x32 RGB) in CIFAR-10's format: disjoint splits."""
    x, y = download.digits_arrays()

    def pick(count: int, offset: int):
        rows = np.concatenate([np.flatnonzero(y == c)[offset : offset + count] for c in range(10)])
        return x[rows], y[rows]

    cifar_format.write(raw_dir, pick(train_per_class, 0), pick(test_per_class, 100), cifar_format.CIFAR10_CLASSES)
    # SOURCE.json as `minigen download` writes it: retrain checks the batches against it.
    raw_data.record_source(raw_dir, dataset="digits", source_md5="0" * 32, origin="tests", split="tests")
    return raw_dir


def write_genome(genomes_dir: Path, index: int, genome=SMALL_GENOME, accuracy: float = 0.5) -> Path:
    genomes_dir.mkdir(parents=True, exist_ok=True)
    record = {"index": index, "genome": genome, "genome_id": G.genome_id(genome), "source": "winner",
              "search": {"accuracy": accuracy, "born": 0, "generation": 1, "round": 0}}
    path = genomes_dir / f"genome_{index}.json"
    path.write_text(json.dumps(record))
    return path


def write_params(root: Path, **retrain) -> Path:
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params_with(retrain={"device": "cpu", **retrain})))
    return path


@pytest.fixture(scope="module")
def digits_raw(tmp_path_factory) -> Path:
    return make_digits_raw(tmp_path_factory.mktemp("digits") / "raw", train_per_class=40, test_per_class=30)


@pytest.fixture(scope="module")
def tiny_raw(tmp_path_factory) -> Path:
    return make_digits_raw(tmp_path_factory.mktemp("tiny") / "raw", train_per_class=6, test_per_class=3)


def retrain_cli(cli, root: Path, raw: Path, index: int = 0, out: str = "results/retrain", env=None):
    mini = mini_of(raw) if raw.is_dir() else raw.parent / "mini"
    return cli("retrain", str(index), "--params", root / "params.yaml", "--genomes", root / "results" / "genomes",
               "--raw", raw, "--mini", mini, "--out", root / out, cwd=root, env={**ONE_THREAD, **(env or {})})


def kill_at_first_checkpoint(root: Path, raw: Path) -> int:
    """Run `minigen retrain 0` and SIGKILL it as soon as its first epoch checkpoint exists."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **ONE_THREAD)
    args = ["retrain", "0", "--params", root / "params.yaml", "--genomes", root / "results" / "genomes",
            "--raw", raw, "--mini", mini_of(raw), "--out", root / "results" / "retrain"]
    log = root / "killed.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "minigen", *map(str, args)], cwd=root, env=env,
                                stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 300
        while not list(paths.checkpoints_dir().glob("retrain-*.pt")):
            assert proc.poll() is None, f"the retrain ended before its first checkpoint: {log.read_text()}"
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    return proc.returncode


# ---------------------------------------------------------------- the loop's pieces


def test_augment_batch_is_a_numpy_crop_and_flip():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 3, 32, 32), dtype=np.uint8)
    p = T.CROP_PAD
    padded_np = np.pad(images, ((0, 0), (0, 0), (p, p), (p, p)))
    padded = torch.nn.functional.pad(torch.from_numpy(images), (p, p, p, p)).permute(0, 2, 3, 1).contiguous()
    idx = torch.tensor([4, 0, 5, 4, 2])
    dy = torch.tensor([0, 8, 3, 1, 7])
    dx = torch.tensor([8, 0, 5, 2, 4])
    flip = torch.tensor([False, True, True, False, True])
    out = T.augment_batch(padded, idx, dy, dx, flip)
    assert out.shape == (5, 3, 32, 32) and out.dtype == torch.uint8
    for b in range(5):
        crop = padded_np[idx[b], :, dy[b] : dy[b] + 32, dx[b] : dx[b] + 32]
        expected = crop[:, :, ::-1] if flip[b] else crop
        np.testing.assert_array_equal(out[b].numpy(), expected)
    assert torch.equal(out, T.augment_batch(padded, idx, dy, dx, flip))


def test_bf16_on_cpu_trains_dilated_depthwise_convs_finitely_and_repeatably():
    # oneDNN's bf16 weight gradient of a dilated depthwise conv reads uninitialised memory
    # (NaN losses, other bits each run); minigen keeps depthwise convs fp32 under autocast.
    dilated = [[".", 1, ["identity", "3*3 conv", "3*3 conv"]], [16, 1, ["identity", "3*3 dil conv", "3*3 dil conv"]],
               [24, 1, ["3*3 dil conv", "3*3 avgpool"]], [16, 1, ["5*5 dconv", "3*3 dil conv"]],
               [16, 1, ["3*3 conv", "3*3 dil conv"]]]
    data, _ = random_splits(96, 0, seed=0)
    recipe = T.Recipe(epochs=2, batch_size=32, seed=1, precision="bf16")
    runs = []
    with D.intra_op_threads(1):
        for _ in range(3):
            model = T.build_seeded(dilated, recipe.seed, torch.device("cpu"))
            T.fit(model, data, None, recipe)  # raises TrainingFailed on a NaN loss
            runs.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert all(torch.isfinite(r).all() for r in runs)
    assert all(torch.equal(runs[0], r) for r in runs[1:])


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_gives_the_same_bits_without_the_nan_fill_of_new_tensors(monkeypatch, precision):
    # make_deterministic turns off deterministic mode's NaN fill of new tensors (extra
    # work); that is only sound while no kernel reads a buffer before writing it.
    genome = [[".", 1, ["identity", "3*3 conv", "5*5 dconv"]], [16, 1, ["identity", "3*3 dil conv", "3*3 maxpool"]],
              [8, 1, ["5*5 conv", "3*3 avgpool"]], [16, 1, ["1*7-7*1 conv", "3*3 dconv"]], [8, 1, ["3*3 conv", "3*3 conv"]]]
    data, _ = random_splits(48, 0, seed=0)
    recipe = T.Recipe(epochs=1, batch_size=16, seed=1, precision=precision, optimizer="sgd", momentum=0.9, augment=True)
    make_deterministic = T.D.make_deterministic

    def trained(fill: bool) -> torch.Tensor:
        def setup(p):
            make_deterministic(p)
            torch.utils.deterministic.fill_uninitialized_memory = fill
        monkeypatch.setattr(T.D, "make_deterministic", setup)
        model = T.build_seeded(genome, recipe.seed, torch.device("cpu"))
        T.fit(model, data, data, recipe)
        return torch.cat([t.detach().flatten().double() for t in [*model.parameters(), *model.buffers()]])

    assert torch.equal(trained(fill=True), trained(fill=False))
    make_deterministic(precision)
    assert torch.utils.deterministic.fill_uninitialized_memory is False


def test_recipes_from_params():
    from minigen import settings as P

    settings = P.load(None)
    paper = R.make_recipe(settings, torch.device("cpu"))
    assert (paper.optimizer, paper.lr, paper.batch_size, paper.epochs) == ("adam", 0.001, 64, 340)
    assert not paper.augment and paper.schedule == "constant" and paper.precision == "fp32"
    settings["retrain"]["recipe"] = "modern"
    modern = R.make_recipe(settings, torch.device("cpu"))
    assert (modern.optimizer, modern.lr, modern.momentum, modern.schedule) == ("sgd", 0.05, 0.9, "cosine")
    assert modern.augment and modern.label_smoothing == 0.1 and modern.weight_decay == 0.0005
    assert modern.precision == "fp32"
    assert R.make_recipe(settings, torch.device("cuda")).precision == "bf16"
    settings["retrain"]["momentum"] = 1.5
    with pytest.raises(UserError, match="retrain.momentum"):
        R.make_recipe(settings, torch.device("cpu"))


def test_the_dvclive_folder_is_what_dvclive_writes(tmp_path, monkeypatch):
    from dvclive import Live

    curve = [{"epoch": e, "train_loss": 2.3 / e, "train_accuracy": 0.1 * e, "test_accuracy": 0.09 * e + 1e-17}
             for e in (1, 2, 3)]
    monkeypatch.chdir(tmp_path)  # outside any git or DVC repository: Live would inspect it
    with Live(dir="dvclive", save_dvc_exp=False, dvcyaml=False, report=None) as live:
        for row in curve:
            live.step = row["epoch"]
            for column, name in formats.DVCLIVE_METRICS.items():
                live.log_metric(name, row[column])
    theirs = {p.relative_to(tmp_path / "dvclive").as_posix(): p.read_text()
              for p in (tmp_path / "dvclive").rglob("*") if p.is_file()}
    assert formats.dvclive_files(curve) == theirs


def test_an_index_outside_top_k_is_named_as_such(cli, tmp_path, tiny_raw):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params_with(collect={"top_k": 2, "indices": [0, 1]},
                                                                     retrain={"device": "cpu", "epochs": 1})))
    write_genome(tmp_path / "results" / "genomes", 0)
    proc = retrain_cli(cli, tmp_path, tiny_raw, index=7)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "genome index 7 is outside collect.top_k (2)" in proc.stderr


def test_a_damaged_or_foreign_checkpoint_means_a_fresh_start(tmp_path):
    identity = R.checkpoint_identity("abc", T.Recipe(epochs=2), "data", "cpu")
    path = tmp_path / "ckpt.pt"
    logged = []
    path.write_bytes(b"not a checkpoint")
    assert R.load_checkpoint(path, identity, torch.device("cpu"), logged.append) is None
    state = {"epoch": 0, "model": {}, "optimizer": {}, "schedule": {}, "curve": []}
    path.write_bytes(_saved({"identity": {**identity, "genome_id": "other"}, "fit": state, "seconds": 1.0}))
    assert R.load_checkpoint(path, identity, torch.device("cpu"), logged.append) is None
    assert len(logged) == 2 and all("starting from epoch 1" in line for line in logged)
    path.write_bytes(_saved({"identity": identity, "fit": state, "seconds": 1.0}))
    assert R.load_checkpoint(path, identity, torch.device("cpu"), logged.append)["fit"]["epoch"] == 0


def _saved(obj) -> bytes:
    """A checkpoint as `retrain` writes it: torch.save behind its checksum header."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return integrity.seal_bytes(buffer.getvalue(), R.CHECKPOINT_KIND)


# ---------------------------------------------------------------- the stage


@pytest.mark.slow
@pytest.mark.parametrize("recipe, settings", [
    ("paper", {"epochs": 5, "batch_size": 32, "lr": 0.005}),
    ("modern", {"epochs": 6, "batch_size": 16, "modern_lr": 0.05, "warmup_epochs": 1}),
])
def test_a_short_retrain_beats_guessing(cli, tmp_path, digits_raw, isolated_cache, recipe, settings):
    write_params(tmp_path, recipe=recipe, **settings)
    write_genome(tmp_path / "results" / "genomes", 0)
    proc = retrain_cli(cli, tmp_path, digits_raw)
    assert proc.returncode == 0, proc.stderr
    folder = retrained(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == sorted(formats.RETRAIN_FILES)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.3  # 10 classes: guessing gives 0.1
    assert metrics["recipe"] == recipe and metrics["epochs"] == settings["epochs"]
    assert (metrics["train_images"], metrics["test_images"]) == (400, 300)
    assert metrics["params"] == network.count_params(network.build(SMALL_GENOME))
    assert metrics["genome_id"] == G.genome_id(SMALL_GENOME) and metrics["device_kind"] == "cpu"
    curve = (folder / "curve.csv").read_text().splitlines()
    assert curve[0] == ",".join(formats.CURVE_COLUMNS) and len(curve) == 1 + settings["epochs"]
    assert float(curve[-1].split(",")[3]) == metrics["test_accuracy"]
    weights = load_file(folder / "model.safetensors")
    assert set(weights) == set(network.build(SMALL_GENOME).state_dict())
    assert not list(paths.checkpoints_dir().glob("retrain-*"))  # deleted after success
    assert "epoch 1/" in proc.stderr


@pytest.mark.slow
def test_resume_after_kill_ends_with_the_same_weights(cli, tmp_path, tiny_raw, isolated_cache):
    write_params(tmp_path, recipe="modern", epochs=3, batch_size=16, warmup_epochs=1)
    write_genome(tmp_path / "results" / "genomes", 0)

    killed = kill_at_first_checkpoint(tmp_path, tiny_raw)
    assert killed == -signal.SIGKILL  # killed, not finished
    assert not retrained(tmp_path).exists()
    assert len(list(paths.checkpoints_dir().glob("retrain-*.pt"))) == 1

    resumed = retrain_cli(cli, tmp_path, tiny_raw)
    assert resumed.returncode == 0, resumed.stderr
    assert re.search(r"resuming genome 0 after epoch [12]\b", resumed.stderr)
    assert "epoch 1/3" not in resumed.stderr and "epoch 3/3" in resumed.stderr

    straight = retrain_cli(cli, tmp_path, tiny_raw, out="straight",
                           env={"MINIGEN_CACHE_DIR": str(tmp_path / "other-cache")})
    assert straight.returncode == 0, straight.stderr
    a, b = retrained(tmp_path), retrained(tmp_path, "straight")
    # Every file but cost.json (seconds, where it ran) is the same bytes.
    for path in sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name != "cost.json"):
        assert (a / path).read_bytes() == (b / path).read_bytes(), path
    assert (a / "dvclive/plots/metrics/test/accuracy.tsv").read_text().splitlines()[1:] == \
        [f"{row.split(',')[0]}\t{row.split(',')[3]}" for row in (a / "curve.csv").read_text().splitlines()[1:]]



def test_a_cpu_retrain_gives_the_same_weights_whatever_the_thread_count(cli, tmp_path, tiny_raw, isolated_cache):
    # Snakemake runs retrain jobs with OMP_NUM_THREADS=1, `dvc repro` with all cores.
    write_params(tmp_path, recipe="paper", epochs=1, batch_size=16)
    write_genome(tmp_path / "results" / "genomes", 0)
    one = retrain_cli(cli, tmp_path, tiny_raw, out="one")
    two = retrain_cli(cli, tmp_path, tiny_raw, out="two", env={"OMP_NUM_THREADS": "2"})
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    a, b = retrained(tmp_path, "one"), retrained(tmp_path, "two")
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert json.loads((b / "metrics.json").read_text())["cpu_threads"] == 1


@pytest.mark.parametrize("content, says", [
    (None, "not found"),
    ("{not json", "not valid JSON"),
    ('{"index": 0}', "malformed"),
    ('{"genome": [[".", 1, ["3*3 conv", "3*3 conv"]]]}', "malformed"),
])
def test_a_missing_or_malformed_genome_file_is_one_line_and_exit_2(cli, tmp_path, tiny_raw, content, says):
    write_params(tmp_path, epochs=1)
    genomes = tmp_path / "results" / "genomes"
    genomes.mkdir(parents=True)
    if content is not None:
        (genomes / "genome_0.json").write_text(content)
    proc = retrain_cli(cli, tmp_path, tiny_raw)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and says in proc.stderr
    assert not (tmp_path / "results" / "retrain").exists()


def test_missing_raw_data_is_one_line_and_exit_2(cli, tmp_path):
    write_params(tmp_path, epochs=1)
    write_genome(tmp_path / "results" / "genomes", 0)
    proc = retrain_cli(cli, tmp_path, tmp_path / "nowhere")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "minigen download" in proc.stderr


# ---------------------------------------------------------------- unseen test images, seeds


def test_the_unseen_test_images_are_all_but_the_mini_sets_test_images(tiny_raw):
    mini = mini_of(tiny_raw)
    picked = json.loads((mini / "manifest.json").read_text())["test_indices"]
    unseen = R.unseen_test_images(mini, tiny_raw, raw_data.read_source(tiny_raw)["source_md5"], 30)
    assert len(picked) == 10 and sorted(np.flatnonzero(~unseen.numpy()).tolist()) == sorted(picked)
    correct = torch.zeros(30, dtype=torch.bool)
    correct[picked] = True  # right on exactly the images the search saw: 0 on the unseen ones
    assert R.accuracies(correct, unseen) == {"test_accuracy": 10 / 30, "clean_test_accuracy": 0.0,
                                             "clean_test_images": 20}


@pytest.mark.parametrize("indices", [[30], [-1], [1, 1], "0-9", [0.5]])
def test_mini_test_indices_that_are_not_test_images_are_refused_in_one_line(tmp_path, tiny_raw, indices):
    import shutil

    mini = shutil.copytree(mini_of(tiny_raw), tmp_path / "mini")
    manifest = json.loads((mini / "manifest.json").read_text())
    (mini / "manifest.json").write_text(json.dumps({**manifest, "test_indices": indices}))
    with pytest.raises(UserError, match=r"manifest.json is malformed: '?test_indices'? must be") as caught:
        R.unseen_test_images(mini, tiny_raw, manifest["source_md5"], 30)
    assert "\n" not in str(caught.value)


def test_a_retrains_accuracies_are_its_weights_on_all_and_on_the_unseen_test_images(cli, tmp_path, tiny_raw):
    write_params(tmp_path, epochs=1, batch_size=16)
    write_genome(tmp_path / "results" / "genomes", 0)
    proc = retrain_cli(cli, tmp_path, tiny_raw)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((retrained(tmp_path) / "metrics.json").read_text())
    model = network.build(SMALL_GENOME)
    model.load_state_dict(load_file(retrained(tmp_path) / "model.safetensors"))
    _, test, _ = R.load_full(tiny_raw)
    hits = T.correct_mask(model, test).numpy()
    seen = json.loads((mini_of(tiny_raw) / "manifest.json").read_text())["test_indices"]
    unseen = np.setdiff1d(np.arange(30), seen)
    assert metrics["seed"] == SEED and metrics["clean_test_images"] == 20
    assert metrics["test_accuracy"] == hits.sum() / 30
    assert metrics["clean_test_accuracy"] == hits[unseen].sum() / 20


def test_a_mini_set_of_other_data_is_refused_before_training(cli, tmp_path, tiny_raw):
    write_params(tmp_path, epochs=1)
    write_genome(tmp_path / "results" / "genomes", 0)
    other = tmp_path / "other" / "raw"
    make_digits_raw(other, train_per_class=6, test_per_class=3)
    raw_data.record_source(other, dataset="digits", source_md5="1" * 32, origin="tests", split="tests")
    proc = cli("retrain", "0", "--params", tmp_path / "params.yaml", "--genomes", tmp_path / "results" / "genomes",
               "--raw", other, "--mini", mini_of(tiny_raw), "--out", tmp_path / "out", cwd=tmp_path, env=ONE_THREAD)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "drawn from other data" in proc.stderr and not (tmp_path / "out").exists()


def test_each_seed_of_retrain_seeds_is_its_own_retrain_and_others_are_refused(cli, tmp_path, tiny_raw):
    write_params(tmp_path, epochs=1, batch_size=16, seeds=[5, 6])
    write_genome(tmp_path / "results" / "genomes", 0)
    first = retrain_cli(cli, tmp_path, tiny_raw)  # no --seed: the first of retrain.seeds
    second = cli("retrain", "0", "6", "--params", tmp_path / "params.yaml", "--genomes",
                 tmp_path / "results" / "genomes", "--raw", tiny_raw, "--mini", mini_of(tiny_raw),
                 "--out", tmp_path / "results" / "retrain", cwd=tmp_path, env=ONE_THREAD)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    five, six = retrained(tmp_path, seed=5), retrained(tmp_path, seed=6)
    assert json.loads((five / "metrics.json").read_text())["seed"] == 5
    assert json.loads((six / "metrics.json").read_text())["seed"] == 6
    assert (five / "model.safetensors").read_bytes() != (six / "model.safetensors").read_bytes()
    refused = cli("retrain", "0", "7", "--params", tmp_path / "params.yaml", "--genomes",
                  tmp_path / "results" / "genomes", "--raw", tiny_raw, "--mini", mini_of(tiny_raw), cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.strip() == \
        "minigen: error: seed 7 is not in retrain.seeds (5, 6)"
