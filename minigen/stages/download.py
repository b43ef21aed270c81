"""The `download` stage: CIFAR-10 or the embedded digits into `data/raw/`, md5-checked.

`data/raw/` holds `cifar-10-batches-py/` (see `cifar_format`) and `SOURCE.json` (see `data.raw`): the
dataset, the md5 naming its source (the archive's md5 for CIFAR-10, the content's for
digits), where it came from, and the sha256 of every batch file, so `sample` and a re-run
of `download` can tell intact data from a damaged or foreign copy.

CIFAR-10 comes through torchvision's `download_url` (with its md5 check) from `data.url`,
or from a local `data.archive` checked against `data.archive_md5`. Only the seven known
batch files are extracted (no path in the archive is trusted). Everything is built in a
staging folder and swapped in at the end, so a bad archive leaves `data/raw/` untouched.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import shutil
import tarfile
import urllib.error
import zlib
from pathlib import Path

import numpy as np

from minigen.store import atomic
from minigen.data import cifar_format
from minigen.data import raw as raw_data
from minigen.errors import UserError

ARCHIVE_NAME = "cifar-10-python.tar.gz"
OFFICIAL_SPLIT = "official"
# Digits: within each class, in the dataset's order, every 5th image is a test image (~80/20).
# A rule rather than a random split, so it is the same under every library version.
DIGITS_TEST_EVERY = 5
DIGITS_SPLIT = f"per class, every {DIGITS_TEST_EVERY}th image in dataset order is test"
DIGITS_CLASSES = tuple(str(d) for d in range(10))


def download(params: dict, out: str | Path) -> str:
    """Fill `out` with the dataset `params` names, unless it already holds it intact."""
    data, out = params["data"], Path(out)
    if data["dataset"] == "digits":
        x, y = digits_arrays()
        identity = {"dataset": "digits", "source_md5": _content_md5(x, y), "split": DIGITS_SPLIT}
    else:
        identity = {"dataset": "cifar10", "source_md5": _md5_setting(data["archive_md5"]), "split": OFFICIAL_SPLIT}

    existing = raw_data.intact_source(out)
    if existing is not None and all(existing.get(k) == v for k, v in identity.items()):
        return f"{out} already holds intact {identity['dataset']} (md5 {identity['source_md5']}): nothing to do"

    with atomic.staged_dir(out) as staging:
        if data["dataset"] == "digits":
            origin = _write_digits(staging, x, y)
        elif data["archive"]:
            origin = _from_archive(Path(data["archive"]), identity["source_md5"], staging)
        elif data["url"]:
            origin = _from_url(data["url"], identity["source_md5"], staging)
        else:
            raise UserError("set data.url or data.archive to say where CIFAR-10 comes from")
        try:
            raw = cifar_format.read(staging)
            raw_data.check_labels(raw)
        except UserError as exc:
            raise UserError(f"{origin} does not hold readable CIFAR-10 batches: {exc}") from None
        raw_data.record_source(staging, origin=origin, **identity)
    return (f"wrote {identity['dataset']} from {origin} to {out}: {len(raw['train'][1])} train and "
            f"{len(raw['test'][1])} test images, {len(raw['classes'])} classes")


def _md5_setting(value) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F]{32}", value):
        raise UserError(f"data.archive_md5 must be a 32-digit hex md5 (quote it in params.yaml), got {value!r}")
    return value.lower()


def _from_url(url: str, md5: str, staging: Path) -> str:
    from torchvision.datasets.utils import download_url

    folder = staging / ".download"
    path = folder / ARCHIVE_NAME
    try:
        download_url(url, str(folder), filename=ARCHIVE_NAME, md5=md5)
    except RuntimeError:  # torchvision: "File not found or corrupted." after its md5 check
        got = file_md5(path) if path.is_file() else "nothing"
        raise UserError(f"download from {url} failed the md5 check: got {got}, expected {md5} "
                        "(data.archive_md5); nothing written") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise UserError(f"cannot download {url}: {reason}") from None
    _extract(path, staging)
    shutil.rmtree(folder)
    return url


def _from_archive(archive: Path, md5: str, staging: Path) -> str:
    if not archive.is_file():
        raise UserError(f"data.archive {archive} not found")
    got = file_md5(archive)
    if got != md5:
        raise UserError(f"{archive} has md5 {got}, expected {md5} (data.archive_md5): "
                        "truncated or a different file; nothing written")
    _extract(archive, staging)
    return str(archive)


def _extract(archive: Path, staging: Path) -> None:
    """Copy out the seven known batch files; ignore every other member."""
    wanted = [f"{cifar_format.BATCH_DIR}/{name}" for name in raw_data.BATCH_FILES]
    found = set()
    (staging / cifar_format.BATCH_DIR).mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if name in wanted and member.isfile():
                    with tar.extractfile(member) as src, open(staging / name, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    found.add(name)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise UserError(f"cannot extract {archive}: {str(exc) or type(exc).__name__} (truncated or corrupt?)") from None
    missing = [name for name in wanted if name not in found]
    if missing:
        raise UserError(f"{archive} is not a CIFAR-10 python archive: it lacks {missing[0]}")


def file_md5(path: Path, chunk: int = 1 << 20) -> str:
    """md5 as torchvision computes it; hashlib directly, as importing torchvision takes seconds."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits as (N, 3, 32, 32) uint8 images and int64 labels.

    Grey levels 0..16 become 0..255 (exactly rounded); each pixel becomes a 4x4 block
    (nearest-neighbour upscaling) and the grey channel is copied to R, G and B.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    grey = np.rint(digits.images * (255 / 16)).astype(np.uint8)
    big = grey.repeat(4, axis=1).repeat(4, axis=2)
    return np.repeat(big[:, None], 3, axis=1), digits.target.astype(np.int64)


def digits_test_mask(labels: np.ndarray) -> np.ndarray:
    test = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        test[rows[DIGITS_TEST_EVERY - 1 :: DIGITS_TEST_EVERY]] = True
    return test


def _write_digits(staging: Path, x: np.ndarray, y: np.ndarray) -> str:
    import sklearn

    test = digits_test_mask(y)
    cifar_format.write(staging, (x[~test], y[~test]), (x[test], y[test]), DIGITS_CLASSES)
    return f"sklearn.datasets.load_digits (scikit-learn {sklearn.__version__})"


def _content_md5(x: np.ndarray, y: np.ndarray) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    digest.update(np.ascontiguousarray(x).tobytes())
    digest.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    return digest.hexdigest()
