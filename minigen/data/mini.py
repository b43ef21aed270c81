"""The frozen Mini CIFAR10 on disk, and loading it onto a device in one call.

`data/mini/` holds `train.npz` and `test.npz` (arrays `x`: (N, 3, 32, 32) uint8 and
`y`: (N,) int64; plain npz, loaded with `allow_pickle=False`) and `manifest.json`
(source indices, seed, class names, per-file sha256, source md5).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minigen.store import atomic
from minigen.errors import UserError

FILES = ("train.npz", "test.npz")
MANIFEST = "manifest.json"
# Manifest fields that describe the set (what `verify` prints), with their types.
DESCRIBED = {"train_indices": list, "test_indices": list, "classes": list, "dataset": str, "seed": int}


def npz_bytes(x: np.ndarray, y: np.ndarray) -> bytes:
    """Byte-stable npz (np.savez writes no timestamps into its zip members)."""
    buffer = io.BytesIO()
    np.savez(buffer, x=np.ascontiguousarray(x, dtype=np.uint8), y=np.asarray(y, dtype=np.int64))
    return buffer.getvalue()


def read_manifest(mini_dir: str | Path) -> dict:
    path = Path(mini_dir) / MANIFEST
    if not path.exists():
        raise UserError(f"no frozen mini set in {mini_dir} (run `minigen sample` first)")
    manifest = atomic.read_json(path, "mini-set manifest")
    _check_manifest(manifest, path)
    return manifest


def _check_manifest(manifest, path: Path) -> None:
    """The fields minigen reads, and a sha256 for every file: an empty map would verify nothing."""
    again = "run `minigen sample` again"
    if not isinstance(manifest, dict):
        raise UserError(f"{path} is malformed: not an object ({again})")
    hashes = manifest.get("sha256")
    if not isinstance(hashes, dict) or sorted(hashes) != sorted(FILES) or not all(
        isinstance(v, str) and len(v) == 64 for v in hashes.values()
    ):
        raise UserError(f"{path} is malformed: its sha256 map must give a sha256 for exactly "
                        f"{', '.join(FILES)} ({again})")
    for key, kind in DESCRIBED.items():  # optional here (tests freeze bare sets); `verify` wants all
        if key in manifest and (not isinstance(manifest[key], kind) or isinstance(manifest[key], bool)):
            raise UserError(f"{path} is malformed: '{key}' must be a {kind.__name__} ({again})")


def check(mini_dir: str | Path, complete: bool = False) -> dict:
    """Re-hash every file against the manifest; raise naming the first that differs.

    With `complete`, the manifest must also hold every field `sample` writes.
    """
    manifest = read_manifest(mini_dir)
    missing = [key for key in DESCRIBED if key not in manifest]
    if complete and missing:
        raise UserError(f"{Path(mini_dir) / MANIFEST} is malformed: it lacks {', '.join(missing)} "
                        "(run `minigen sample` again)")
    for name, expected in sorted(manifest["sha256"].items()):
        path = Path(mini_dir) / name
        if not path.is_file():
            raise UserError(f"{path} is missing from the frozen mini set (or not a file): run `minigen sample`")
        actual = atomic.sha256_file(path)
        if actual != expected:
            raise UserError(f"{path} differs from its manifest (sha256 {actual[:12]}..., expected {expected[:12]}...)")
    return manifest


def fingerprint(manifest: dict) -> str:
    """One sha256 naming the mini set's content (for cache keys and checkpoints)."""
    import hashlib

    joined = "".join(f"{name}:{digest};" for name, digest in sorted(manifest["sha256"].items()))
    return hashlib.sha256(joined.encode()).hexdigest()


@dataclass
class MiniSet:
    train: "object"  # minigen.training.loop.Split
    test: "object"
    manifest: dict
    sha256: str


def read_arrays(mini_dir: str | Path, name: str, classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """x (N, 3, 32, 32) uint8 and y (N,) int64 in 0..classes-1, or one line saying what is wrong."""
    path = Path(mini_dir) / name
    try:
        with np.load(path, allow_pickle=False) as data:
            x, y = data["x"], data["y"]
    except FileNotFoundError:
        raise UserError(f"{path} is missing (run `minigen sample`)") from None
    except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile) as exc:
        # A damaged npz can match a hand-edited manifest: the hash alone proves nothing.
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path} is not a mini-set file ({reason}); run `minigen sample` again") from None
    shape_ok = x.dtype == np.uint8 and x.ndim == 4 and x.shape[1:] == (3, 32, 32) and len(x) > 0
    if not shape_ok or y.dtype != np.int64 or y.shape != (len(x),):
        raise UserError(f"{path} holds x {x.dtype}{list(x.shape)} and y {y.dtype}{list(y.shape)}, expected "
                        "x uint8[N, 3, 32, 32] and y int64[N]; run `minigen sample` again")
    if classes is not None and (y.min() < 0 or y.max() >= classes):
        raise UserError(f"{path} has labels outside 0..{classes - 1}; run `minigen sample` again")
    return x, y


def load(mini_dir: str | Path, device="cpu", verify: bool = True) -> MiniSet:
    """The mini set as tensors on `device`, checked against its manifest first."""
    import torch

    from minigen.training.loop import Split

    manifest = check(mini_dir) if verify else read_manifest(mini_dir)
    splits = []
    for name in FILES:
        x, y = read_arrays(mini_dir, name, len(manifest["classes"]) if "classes" in manifest else None)
        splits.append(Split(torch.from_numpy(x), torch.from_numpy(y)).to(torch.device(device)))
    return MiniSet(train=splits[0], test=splits[1], manifest=manifest, sha256=fingerprint(manifest))
