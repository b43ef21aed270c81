"""The `download` stage: CIFAR-10 over HTTP (a local server) and from a local archive, and digits."""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from archives import make_cifar_archive, make_dataset, write_params

from minigen.data import cifar_format
from minigen.stages import download
from minigen.data import raw as raw_data
from minigen.data import mini
from minigen import settings as P
from minigen.errors import UserError

# Never send the test's requests to a proxy a CI machine may define.
LOCAL = {"no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost", "http_proxy": "", "HTTP_PROXY": ""}
UNBALANCED = [3, 7, 4, 9, 5, 6, 3, 8, 4, 10]


class RecordingHandler(SimpleHTTPRequestHandler):
    def __init__(self, *args, log: list, **kwargs):
        self.request_log = log
        super().__init__(*args, **kwargs)

    def do_GET(self):
        self.request_log.append(self.path)
        super().do_GET()

    def log_message(self, *args):  # keep pytest's output clean
        pass


@pytest.fixture
def server(tmp_path):
    """(folder served, base URL, list of requested paths) of an HTTP server on 127.0.0.1."""
    root = tmp_path / "www"
    root.mkdir()
    log: list[str] = []
    handler = functools.partial(RecordingHandler, directory=str(root), log=log)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_port}", log
    httpd.shutdown()
    httpd.server_close()


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def error_line(proc) -> str:
    """The error line (a download may print a progress bar on stderr before it)."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("minigen: error: ")
    return last


def test_download_over_http_through_torchvision(tmp_path, server, cli):
    www, base, log = server
    _, md5 = make_cifar_archive(www, train_per_class=UNBALANCED, test_per_class=2)
    write_params(tmp_path, data={"url": f"{base}/cifar-10-python.tar.gz", "archive_md5": md5})

    proc = cli("download", cwd=tmp_path, env=LOCAL)
    assert proc.returncode == 0, proc.stderr
    assert "/cifar-10-python.tar.gz" in log

    raw = cifar_format.read(tmp_path / "data" / "raw")
    expected = make_dataset(train_per_class=UNBALANCED, test_per_class=2)
    for split in ("train", "test"):
        np.testing.assert_array_equal(raw[split][0], expected[split][0])
        np.testing.assert_array_equal(raw[split][1], expected[split][1])
    assert raw["classes"] == list(cifar_format.CIFAR10_CLASSES)
    source = json.loads((tmp_path / "data" / "raw" / "SOURCE.json").read_text())
    assert source["dataset"] == "cifar10" and source["source_md5"] == md5
    assert source["origin"] == f"{base}/cifar-10-python.tar.gz"
    # Only the batches stay: the downloaded archive and the staging folder are gone.
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["raw"]
    assert sorted(p.name for p in (tmp_path / "data" / "raw").iterdir()) == ["SOURCE.json", "cifar-10-batches-py"]

    # Same source again: nothing downloaded, nothing rewritten.
    requests = len(log)
    before = tree_bytes(tmp_path / "data" / "raw")
    again = cli("download", cwd=tmp_path, env=LOCAL)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert len(log) == requests
    assert tree_bytes(tmp_path / "data" / "raw") == before


@pytest.mark.parametrize("damage", ["wrong_md5", "truncated"])
def test_bad_download_is_refused_and_existing_raw_untouched(tmp_path, server, cli, damage):
    www, base, log = server
    path, md5 = make_cifar_archive(www, seed=1)
    raw_dir = tmp_path / "data" / "raw"
    earlier, earlier_md5 = make_cifar_archive(tmp_path / "mine", seed=2)  # an earlier, different download
    download.download(params_for(earlier, earlier_md5), raw_dir)
    before = tree_bytes(raw_dir)

    if damage == "wrong_md5":
        md5 = "0" * 32
    else:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # server now serves half
    write_params(tmp_path, data={"url": f"{base}/cifar-10-python.tar.gz", "archive_md5": md5})
    proc = cli("download", cwd=tmp_path, env=LOCAL)
    line = error_line(proc)
    assert "md5" in line and md5 in line
    assert "/cifar-10-python.tar.gz" in log  # it really went through the download
    assert tree_bytes(raw_dir) == before
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["raw"]  # no staging left behind


def test_offline_archive_is_md5_checked_and_needs_no_network(tmp_path, cli):
    _, md5 = make_cifar_archive(tmp_path / "downloads", train_per_class=4, test_per_class=3)
    # The URL points at a closed port: it must not be used when data.archive is set.
    write_params(tmp_path, data={"archive": "downloads/cifar-10-python.tar.gz", "archive_md5": md5,
                                 "url": "http://127.0.0.1:9/cifar-10-python.tar.gz"})
    proc = cli("download", "--out", "elsewhere/raw", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    raw = cifar_format.read(tmp_path / "elsewhere" / "raw")
    assert np.bincount(raw["train"][1]).tolist() == [4] * 10
    assert np.bincount(raw["test"][1]).tolist() == [3] * 10
    assert json.loads((tmp_path / "elsewhere" / "raw" / "SOURCE.json").read_text())["origin"] == (
        "downloads/cifar-10-python.tar.gz")

    write_params(tmp_path, data={"archive": "downloads/cifar-10-python.tar.gz", "archive_md5": "f" * 32})
    line = error_line(cli("download", cwd=tmp_path))
    assert "downloads/cifar-10-python.tar.gz" in line and "f" * 32 in line
    assert not (tmp_path / "data" / "raw").exists()

    write_params(tmp_path, data={"archive": "downloads/missing.tar.gz"})
    assert "not found" in error_line(cli("download", cwd=tmp_path))


def params_for(archive: Path, md5) -> dict:
    params = P.load(None)
    params["data"].update(archive=str(archive), archive_md5=md5)
    return params


def test_corrupt_archive_with_matching_md5_is_refused(tmp_path):
    """Even an archive whose md5 the user vouched for must extract and read as CIFAR-10."""
    path, _ = make_cifar_archive(tmp_path)
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(path.read_bytes()[:-4000])
    out = tmp_path / "raw"
    with pytest.raises(UserError, match="cannot extract"):
        download.download(params_for(truncated, hashlib.md5(truncated.read_bytes()).hexdigest()), out)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-python.tar.gz", "truncated.tar.gz"]


def test_archive_without_cifar_batches_is_refused(tmp_path):
    import tarfile

    other = tmp_path / "other.tar.gz"
    (tmp_path / "notes.txt").write_text("not CIFAR")
    with tarfile.open(other, "w:gz") as tar:  # a member that would escape a naive extractall
        tar.add(tmp_path / "notes.txt", arcname="cifar-10-batches-py/../../escaped.txt")
    with pytest.raises(UserError, match="lacks cifar-10-batches-py/data_batch_1"):
        download.download(params_for(other, hashlib.md5(other.read_bytes()).hexdigest()), tmp_path / "raw")
    assert not (tmp_path / "raw").exists()
    assert not (tmp_path / "escaped.txt").exists()

    junk = tmp_path / "junk.tar.gz"  # the right names, but not CIFAR-10 batches inside
    with tarfile.open(junk, "w:gz") as tar:
        for name in raw_data.BATCH_FILES:
            tar.add(tmp_path / "notes.txt", arcname=f"cifar-10-batches-py/{name}")
    with pytest.raises(UserError, match="does not hold readable CIFAR-10 batches"):
        download.download(params_for(junk, hashlib.md5(junk.read_bytes()).hexdigest()), tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_archive_md5_setting_must_be_an_md5(tmp_path):
    path, _ = make_cifar_archive(tmp_path)
    with pytest.raises(UserError, match="data.archive_md5 must be"):
        download.download(params_for(path, None), tmp_path / "raw")


def test_digits_offline_then_sample_and_load(tmp_path, cli):
    write_params(tmp_path, data={"dataset": "digits", "train_per_class": 20, "test_per_class": 5},
                 seed=7)
    proc = cli("download", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    raw = cifar_format.read(tmp_path / "data" / "raw")
    assert raw["classes"] == [str(d) for d in range(10)]
    train_counts, test_counts = (np.bincount(raw[s][1]).tolist() for s in ("train", "test"))
    assert train_counts == [143, 146, 142, 147, 145, 146, 145, 144, 140, 144]
    assert test_counts == [35, 36, 35, 36, 36, 36, 36, 35, 34, 36]
    x = raw["train"][0]
    assert x.shape[1:] == (3, 32, 32) and x.dtype == np.uint8 and x.max() == 255 and x.min() == 0
    assert np.array_equal(x[:, 0], x[:, 1]) and np.array_equal(x[:, 0], x[:, 2])  # grey copied to RGB
    assert np.array_equal(x[:, :, ::4, ::4].repeat(4, 2).repeat(4, 3), x)  # 8x8 upscaled, nearest
    assert "nothing to do" in cli("download", cwd=tmp_path, check=True).stdout

    assert cli("sample", cwd=tmp_path).returncode == 0
    mini_set = mini.load(tmp_path / "data" / "mini", "cpu")
    assert tuple(mini_set.train.x.shape) == (200, 3, 32, 32) and tuple(mini_set.test.x.shape) == (50, 3, 32, 32)
    assert mini_set.train.y.bincount().tolist() == [20] * 10
    assert mini_set.test.y.bincount().tolist() == [5] * 10
    assert mini_set.manifest["dataset"] == "digits" and mini_set.manifest["classes"] == raw["classes"]


def test_switching_dataset_replaces_raw_data(tmp_path):
    params = P.load(None)
    params["data"]["dataset"] = "digits"
    download.download(params, tmp_path / "raw")
    path, md5 = make_cifar_archive(tmp_path)
    message = download.download(params_for(path, md5), tmp_path / "raw")
    assert message.startswith("wrote cifar10")
    assert json.loads((tmp_path / "raw" / "SOURCE.json").read_text())["dataset"] == "cifar10"
