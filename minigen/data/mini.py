"""The frozen Mini CIFAR10 on disk, and loading it onto a device in one call.

`data/mini/` holds `train.npz` and `test.npz` (arrays `x`: (N, 3, 32, 32) uint8 and
`y`: (N,) int64; plain npz, loaded with `allow_pickle=False`) and `manifest.json`
(source indices, seed, class names, per-file sha256, source md5).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minigen.store import atomic
from minigen.errors import UserError

FILES = ("train.npz", "test.npz")
MANIFEST = "manifest.json"


def npz_bytes(x: np.ndarray, y: np.ndarray) -> bytes:
    """Byte-stable npz (np.savez writes no timestamps into its zip members)."""
    buffer = io.BytesIO()
    np.savez(buffer, x=np.ascontiguousarray(x, dtype=np.uint8), y=np.asarray(y, dtype=np.int64))
    return buffer.getvalue()


def read_manifest(mini_dir: str | Path) -> dict:
    path = Path(mini_dir) / MANIFEST
    if not path.exists():
        raise UserError(f"no frozen mini set in {mini_dir} (run `minigen sample` first)")
    return atomic.read_json(path, "mini-set manifest")


def check(mini_dir: str | Path) -> dict:
    """Re-hash every file against the manifest; raise naming the first that differs."""
    manifest = read_manifest(mini_dir)
    for name, expected in sorted(manifest["sha256"].items()):
        path = Path(mini_dir) / name
        if not path.exists():
            raise UserError(f"{path} is missing from the frozen mini set")
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


def read_arrays(mini_dir: str | Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    path = Path(mini_dir) / name
    try:
        with np.load(path, allow_pickle=False) as data:
            return data["x"], data["y"]
    except FileNotFoundError:
        raise UserError(f"{path} is missing (run `minigen sample`)") from None
    except (ValueError, KeyError, OSError) as exc:
        raise UserError(f"{path} is not a mini-set file ({exc})") from None


def load(mini_dir: str | Path, device="cpu", verify: bool = True) -> MiniSet:
    """The mini set as tensors on `device`, checked against its manifest first."""
    import torch

    from minigen.training.loop import Split

    manifest = check(mini_dir) if verify else read_manifest(mini_dir)
    splits = []
    for name in FILES:
        x, y = read_arrays(mini_dir, name)
        splits.append(Split(torch.from_numpy(x), torch.from_numpy(y)).to(torch.device(device)))
    return MiniSet(train=splits[0], test=splits[1], manifest=manifest, sha256=fingerprint(manifest))
