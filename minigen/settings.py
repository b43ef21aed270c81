"""Load `params.yaml`: the paper's defaults, overridden by the file, then validated.

Every stage reads its settings from here and only paths travel on the command line,
so DVC and Snakemake see every setting as a tracked parameter.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from minigen.errors import UserError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"

DEFAULTS: dict[str, Any] = {
    "seed": 2809,
    "data": {
        "dataset": "cifar10",
        "archive": None,
        "url": CIFAR10_URL,
        "archive_md5": CIFAR10_MD5,
        "train_per_class": 100,
        "test_per_class": 10,
    },
    "space": {
        "channels": [24, 40, 64, 80, 128, 256],
        "blocks": [1, 1, 1, 1],
        "p_identity": 0.5,
    },
    "search": {
        "population": 15,
        "keep": 5,
        "generations": 25,
        "epochs": 20,
        "batch_size": 64,
        "lr": 0.001,
        "decay": 0.01,
        "temperature": 1.0,
        "p_channel": 0.3,
        "p_op": 0.5,
        "p_action_list": 0.2,
        "depth_ramp": False,
        "restart_threshold": 0.35,
        "winner_threshold": 0.40,
        "winners": 10,
        "max_rounds": 20,
        "device": "auto",
        "precision": "fp32",
        "workers": 1,
    },
    # `indices` is range(top_k) spelled out: DVC's `foreach` needs a list to fan `retrain`
    # out over and cannot count. Left out (null), it follows top_k.
    "collect": {"top_k": 10, "indices": None},
    "retrain": {
        "epochs": 340,
        "recipe": "paper",
        "batch_size": 64,
        "lr": 0.001,
        "device": "auto",
        # The `modern` recipe only (SGD + Nesterov, warm-up then cosine, label smoothing).
        "modern_lr": 0.05,
        "momentum": 0.9,
        "weight_decay": 0.0005,
        "label_smoothing": 0.1,
        "warmup_epochs": 2,
    },
}

PROBABILITIES = [
    ("space", "p_identity"),
    ("search", "p_channel"),
    ("search", "p_op"),
    ("search", "p_action_list"),
    ("search", "restart_threshold"),
    ("search", "winner_threshold"),
]
POSITIVE_INTS = [
    ("data", "train_per_class"),
    ("data", "test_per_class"),
    ("search", "population"),
    ("search", "keep"),
    ("search", "generations"),
    ("search", "epochs"),
    ("search", "batch_size"),
    ("search", "winners"),
    ("search", "max_rounds"),
    ("search", "workers"),
    ("collect", "top_k"),
    ("retrain", "epochs"),
    ("retrain", "batch_size"),
]
CHOICES = {
    ("data", "dataset"): ("cifar10", "digits"),
    ("retrain", "recipe"): ("paper", "modern"),
    ("search", "precision"): ("fp32", "bf16", "tf32"),
}


def _merge(base: dict, override: dict, where: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        name = f"{where}{key}"
        if key not in base:
            raise UserError(f"unknown setting '{name}' in params")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise UserError(f"setting '{name}' must be a section (a mapping)")
            out[key] = _merge(base[key], value, f"{name}.")
        else:
            out[key] = value
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate(params: dict) -> dict:
    for section, key in PROBABILITIES:
        value = params[section][key]
        if not _is_number(value) or not 0.0 <= value <= 1.0:
            raise UserError(f"{section}.{key} must be a probability in [0, 1], got {value!r}")
    for section, key in POSITIVE_INTS:
        value = params[section][key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserError(f"{section}.{key} must be a positive integer, got {value!r}")
    for (section, key), allowed in CHOICES.items():
        if params[section][key] not in allowed:
            raise UserError(
                f"{section}.{key} must be one of {', '.join(allowed)}, got {params[section][key]!r}"
            )
    if not isinstance(params["seed"], int) or isinstance(params["seed"], bool):
        raise UserError(f"seed must be an integer, got {params['seed']!r}")
    for section, key in [("search", "lr"), ("retrain", "lr"), ("search", "temperature")]:
        value = params[section][key]
        if not _is_number(value) or value <= 0:
            raise UserError(f"{section}.{key} must be a positive number, got {value!r}")
    if not _is_number(params["search"]["decay"]) or params["search"]["decay"] < 0:
        raise UserError(f"search.decay must be a number >= 0, got {params['search']['decay']!r}")
    _check_indices(params["collect"])
    if params["search"]["keep"] > params["search"]["population"]:
        raise UserError("search.keep must not exceed search.population")
    channels = params["space"]["channels"]
    if not channels or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in channels):
        raise UserError(f"space.channels must be a list of positive integers, got {channels!r}")
    blocks = params["space"]["blocks"]
    if (
        not isinstance(blocks, list)
        or len(blocks) != 4
        or not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in blocks)
    ):
        raise UserError(f"space.blocks must be 4 positive integers (cells 1-4), got {blocks!r}")
    return params


def _check_indices(collect: dict) -> None:
    expected = list(range(collect["top_k"]))
    if collect["indices"] is None:
        collect["indices"] = expected
    elif collect["indices"] != expected:
        raise UserError(
            f"collect.indices must be [0, ..., {expected[-1]}] to match collect.top_k={collect['top_k']} "
            f"(dvc.yaml runs one retrain stage per index), got {collect['indices']!r}"
        )


def load(path: str | os.PathLike | None = "params.yaml") -> dict:
    """The validated settings: defaults, overridden by `path` when it exists."""
    if path is None:
        return validate(copy.deepcopy(DEFAULTS))
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"params file not found: {path}") from None
    except OSError as exc:
        raise UserError(f"cannot read params file {path}: {exc.strerror}") from None
    try:
        loaded = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "parse error"
        raise UserError(f"{path} is not valid YAML: {first}") from None
    if not isinstance(loaded, dict):
        raise UserError(f"{path} must hold a mapping of sections")
    return validate(_merge(DEFAULTS, loaded))
