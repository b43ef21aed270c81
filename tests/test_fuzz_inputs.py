"""Property: any genome file or manifest ends in success or a one-line UserError, fast.

A few thousand generated inputs, in-process: random JSON, valid files with one part
replaced by random JSON, random bytes and deep nesting. Anything else (a KeyError, a
TypeError, a hang) is a bug this test finds. The params files are fuzzed in
test_settings.py.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minigen.data import mini
from minigen.errors import UserError
from minigen.space import genome as G
from test_cli_genome import GOOD  # published genome 1
from test_search import write_mini

FUZZ = settings(max_examples=1500, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


scalars = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=True), st.text(max_size=12),
    st.integers(min_value=-10**30, max_value=10**30), st.sampled_from(G.ALL_OPS + (".", "inf")),
    st.sampled_from([0, 1, 2, 24, 256, 2048, 2049, 64, 65, 10**6]),
)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=40)


@st.composite
def edited_genomes(draw):
    """The published genome with one cell, one field or one op replaced."""
    genome = json.loads(json.dumps(GOOD))
    cell = draw(st.integers(0, 4))
    where = draw(st.sampled_from(["cell", "channels", "blocks", "actions", "op"]))
    value = draw(json_values)
    if where == "cell":
        genome[cell] = value
    elif where == "op":
        ops = genome[cell][2]
        ops[draw(st.integers(0, len(ops) - 1))] = value
    else:
        genome[cell][["channels", "blocks", "actions"].index(where)] = value
    return genome


def genome_files():
    as_text = st.one_of(json_values, edited_genomes()).map(lambda v: json.dumps(v).encode())
    nested = st.integers(1, 100_000).map(lambda n: b"[" * n + b"]" * n)
    return st.one_of(as_text, st.binary(max_size=200), nested)


def refused_in_one_line(exc: UserError) -> None:
    message = str(exc)
    assert message and "\n" not in message, message


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(data=genome_files(), with_space=st.booleans())
def test_any_genome_file_is_parsed_or_refused_in_one_line(scratch, data, with_space):
    path = scratch / "genome.json"
    path.write_bytes(data)
    try:
        genome = G.load(str(path), G.Space() if with_space else None)
    except UserError as exc:
        refused_in_one_line(exc)
        return
    assert G.weight_bound(genome) <= G.MAX_WEIGHT_BOUND
    assert G.parse(genome) == genome  # the canonical form is a fixed point


@st.composite
def manifests(draw, valid: dict):
    """A valid manifest with keys dropped, replaced or added; or any JSON at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    manifest = json.loads(json.dumps(valid))
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(sorted(manifest) + ["extra"]))
        action = draw(st.sampled_from(["drop", "replace", "sha256 entry"]))
        if action == "drop":
            manifest.pop(key, None)
        elif action == "replace" or not isinstance(manifest.get("sha256"), dict):
            manifest[key] = draw(json_values)
        else:
            name = draw(st.sampled_from(list(mini.FILES) + ["../outside.npz"]))
            manifest["sha256"][name] = draw(st.one_of(json_values, st.just("0" * 64)))
    return manifest


@pytest.fixture(scope="module")
def mini_dir(scratch) -> Path:
    path = write_mini(scratch / "mini")
    manifest = json.loads((path / mini.MANIFEST).read_text())
    manifest.update(train_indices=list(range(20)), test_indices=list(range(20)), classes=list("abcdefghij"),
                    dataset="cifar10", seed=1)
    (path / mini.MANIFEST).write_text(json.dumps(manifest))
    return path


@FUZZ
@given(data=st.data())
def test_any_manifest_is_verified_or_refused_in_one_line(mini_dir, data):
    valid = json.loads((mini_dir / mini.MANIFEST).read_text())
    manifest = data.draw(manifests(valid))
    fuzzed = mini_dir.parent / "fuzzed"
    fuzzed.mkdir(exist_ok=True)
    for name in mini.FILES:
        target = fuzzed / name
        if not target.exists():
            target.write_bytes((mini_dir / name).read_bytes())
    (fuzzed / mini.MANIFEST).write_text(json.dumps(manifest))
    try:
        checked = mini.check(fuzzed, complete=True)
        for name in mini.FILES:
            mini.read_arrays(fuzzed, name, len(checked["classes"]))
    except UserError as exc:
        refused_in_one_line(exc)
        return
    assert checked["sha256"] == {n: hashlib.sha256((fuzzed / n).read_bytes()).hexdigest() for n in mini.FILES}
