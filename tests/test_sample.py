"""The `sample` stage and `verify`: exact stratification, byte-identical reruns, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from archives import make_raw_dir, write_params

from minigen.data import cifar_format
from minigen.data import mini
from minigen.stages import sample
from minigen import settings as P
from minigen.errors import UserError

TRAIN_AVAILABLE = [6, 12, 7, 20, 9, 8, 6, 15, 7, 25]  # unbalanced, like a real long tail
TEST_AVAILABLE = [3, 5, 4, 9, 3, 6, 3, 4, 7, 3]


@pytest.fixture
def raw_dir(tmp_path):
    return make_raw_dir(tmp_path / "data" / "raw", train_per_class=TRAIN_AVAILABLE, test_per_class=TEST_AVAILABLE)


def settings(seed=2809, train=5, test=2) -> dict:
    params = P.load(None)
    params["seed"] = seed
    params["data"].update(train_per_class=train, test_per_class=test)
    return params


def files(folder) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in (*mini.FILES, mini.MANIFEST)}


def error_line(proc) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minigen: error: "), proc.stderr
    return lines[0]


def test_stratification_is_exact_on_unbalanced_source(raw_dir, tmp_path):
    manifest = sample.sample(settings(train=6, test=3), raw_dir, tmp_path / "mini")  # 6 and 3: the rarest
    raw = cifar_format.read(raw_dir)
    loaded = mini.load(tmp_path / "mini")
    for split, per_class in (("train", 6), ("test", 3)):
        indices = np.array(manifest[f"{split}_indices"])
        assert len(indices) == 10 * per_class
        assert len(set(indices.tolist())) == len(indices)  # no duplicates
        assert np.all(np.diff(indices) > 0)  # stored in batch order
        source_x, source_y = raw[split]
        assert np.bincount(source_y[indices], minlength=10).tolist() == [per_class] * 10
        split_set = getattr(loaded, split)
        np.testing.assert_array_equal(split_set.x.numpy(), source_x[indices])
        np.testing.assert_array_equal(split_set.y.numpy(), source_y[indices])
        assert set(manifest["class_counts"][split].values()) == {per_class}
    assert manifest["source_class_counts"]["train"]["truck"] == 25
    assert manifest["classes"] == list(cifar_format.CIFAR10_CLASSES)
    assert manifest["seed"] == 2809 and manifest["dataset"] == "cifar10"
    source = json.loads((raw_dir / "SOURCE.json").read_text())
    assert manifest["source_md5"] == source["source_md5"]
    assert set(manifest["sha256"]) == set(mini.FILES)


def test_draw_follows_the_documented_stream(raw_dir, tmp_path):
    """The manifest's indices can be redrawn by hand from the recipe in sample.py's docstring."""
    manifest = sample.sample(settings(seed=11), raw_dir, tmp_path / "mini")
    raw = cifar_format.read(raw_dir)
    rng = np.random.default_rng(11)
    for split, per_class in (("train", 5), ("test", 2)):
        labels = raw[split][1]
        taken = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in range(10)]
        assert manifest[f"{split}_indices"] == sorted(np.concatenate(taken).tolist())


def test_same_seed_same_bytes_other_seed_other_sample(raw_dir, tmp_path):
    first = sample.sample(settings(seed=3), raw_dir, tmp_path / "a")
    sample.sample(settings(seed=3), raw_dir, tmp_path / "b")
    assert files(tmp_path / "a") == files(tmp_path / "b")
    other = sample.sample(settings(seed=4), raw_dir, tmp_path / "c")
    assert other["train_indices"] != first["train_indices"]
    assert other["test_indices"] != first["test_indices"]
    assert files(tmp_path / "c")["train.npz"] != files(tmp_path / "a")["train.npz"]


def test_sample_and_verify_cli(raw_dir, tmp_path, cli):
    write_params(tmp_path, data={"train_per_class": 4, "test_per_class": 2})
    proc = cli("sample", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "40 train" in proc.stdout and "20 test" in proc.stdout
    ok = cli("verify", cwd=tmp_path)
    assert ok.returncode == 0 and ok.stdout.startswith("OK data/mini") and "40 train" in ok.stdout

    target = tmp_path / "data" / "mini" / "test.npz"
    damaged = bytearray(target.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01  # one flipped bit in one byte
    target.write_bytes(bytes(damaged))
    line = error_line(cli("verify", "data/mini", cwd=tmp_path))
    assert "test.npz" in line and "train.npz" not in line
    with pytest.raises(UserError, match="test.npz"):
        mini.load(tmp_path / "data" / "mini")


def test_class_too_small_names_class_and_counts_and_keeps_output(raw_dir, tmp_path, cli):
    write_params(tmp_path, data={"train_per_class": 4, "test_per_class": 2})
    cli("sample", cwd=tmp_path, check=True)
    before = files(tmp_path / "data" / "mini")

    write_params(tmp_path, data={"train_per_class": 7, "test_per_class": 2})  # airplane and frog have 6
    line = error_line(cli("sample", cwd=tmp_path))
    assert "'airplane'" in line and "6 train images" in line and "7" in line
    write_params(tmp_path, data={"train_per_class": 4, "test_per_class": 4})  # airplane has 3 test
    line = error_line(cli("sample", cwd=tmp_path))
    assert "'airplane'" in line and "3 test images" in line and "test_per_class" in line
    assert files(tmp_path / "data" / "mini") == before
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["mini", "raw"]


def test_missing_raw_data_says_which_command_makes_it(tmp_path, cli):
    write_params(tmp_path, seed=1)
    line = error_line(cli("sample", cwd=tmp_path))
    assert "data/raw" in line and "minigen download" in line
    assert not (tmp_path / "data" / "mini").exists()


def test_damaged_or_foreign_raw_data_is_refused(raw_dir, tmp_path):
    params = settings()
    params["data"]["dataset"] = "digits"
    with pytest.raises(UserError, match="holds cifar10 but data.dataset is digits"):
        sample.sample(params, raw_dir, tmp_path / "mini")
    batch = raw_dir / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:-10])
    with pytest.raises(UserError, match="data_batch_2 is missing or differs"):
        sample.sample(settings(), raw_dir, tmp_path / "mini")
    assert not (tmp_path / "mini").exists()


def test_unwritable_output_folder(raw_dir, tmp_path, cli):
    # A path under a regular file cannot be created, not even by root (CI runs as root).
    write_params(tmp_path, data={"train_per_class": 4, "test_per_class": 2})
    (tmp_path / "blocker").write_text("a file, not a folder")
    line = error_line(cli("sample", "--out", "blocker/mini", cwd=tmp_path))
    assert "blocker" in line
    assert (tmp_path / "blocker").read_text() == "a file, not a folder"


def test_verify_without_a_mini_set(tmp_path, cli):
    line = error_line(cli("verify", str(tmp_path / "nothing"), cwd=tmp_path))
    assert "minigen sample" in line
