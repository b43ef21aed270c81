"""`minigen.settings`: the one reader of params.yaml. Every refusal is one line naming the
file and the setting (exit 2 from the CLI); a fuzz test backs that up on thousands of
mutated params files."""

from __future__ import annotations

import copy
import math
import re
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from minigen import settings as P
from minigen.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
PAPER_TEXT = (ROOT / "params.yaml").read_text()
PAPER_TREE = yaml.safe_load(PAPER_TEXT)


def dump(tree, **options) -> str:
    return yaml.safe_dump(tree, sort_keys=False, **options)  # a file keeps its order (study.arms)


def with_value(dotted: str, value) -> dict:
    tree = copy.deepcopy(PAPER_TREE)
    *sections, key = dotted.split(".")
    node = tree
    for section in sections:
        node = node[section]
    node[key] = value
    return tree


def refusal(data) -> str:
    """The one-line message `parse` refuses `data` with (a tree is dumped as YAML first)."""
    text = data if isinstance(data, (str, bytes)) else dump(data)
    with pytest.raises(UserError) as info:
        P.parse(text, "params.yaml")
    message = str(info.value)
    assert len(message.splitlines()) == 1 and message.startswith("params.yaml: "), message
    return message


# ---------------------------------------------------------------- what loads


def test_params_yaml_spells_out_the_defaults_which_live_in_settings_only():
    assert P.load(ROOT / "params.yaml") == P.load(None) == P.as_dict(P.PAPER)
    assert P.PAPER.seed == 2809 and P.DEFAULTS["collect"]["indices"] is None
    hard_coded = [path for path in (ROOT / "minigen").rglob("*.py")
                  if "settings" not in path.parts and re.search(r"\b2809\b", path.read_text())]
    assert hard_coded == []


def test_numbers_keep_their_type_so_checkpoint_keys_do_not_move():
    loaded = P.parse(dump(with_value("search.temperature", 1)))
    assert type(loaded.search.temperature) is int
    assert P.as_dict(loaded)["search"] == {**PAPER_TREE["search"], "temperature": 1}


def test_indices_follow_top_k_when_left_out():
    tree = with_value("collect.top_k", 3)
    del tree["collect"]["indices"]
    assert P.parse(dump(tree)).collect.indices == [0, 1, 2]


def test_retrain_seeds_left_out_are_the_pipelines_seed_and_a_study_arm_retrains_with_its_own():
    tree = with_value("seed", 7)
    del tree["retrain"]["seeds"]
    assert P.parse(dump(tree)).retrain.seeds == [7]
    assert P.of({"seed": 5, "retrain": {"seeds": None}}).retrain.seeds == [5]
    two = P.of({"retrain": {"seeds": [3, 4]}})
    assert two.retrain.seeds == [3, 4] and P.arm_settings(two, "random", 2810).retrain.seeds == [2810]


def test_code_built_params_may_leave_sections_out():
    assert P.of({"seed": 7, "search": {"epochs": 3}}).search.epochs == 3
    assert P.of(P.PAPER) is P.PAPER
    assert P.validate(copy.deepcopy(P.DEFAULTS)) == P.load(None)


def test_search_key_leaves_out_speed_settings():
    keyed = P.PAPER.search.keyed()
    assert "workers" not in keyed and "device" not in keyed and keyed["lr"] == 0.001


# ---------------------------------------------------------------- what is refused, in one line


BAD_VALUES = [
    ("search.lr", float("nan"), "search.lr must be a finite number > 0, got nan"),
    ("search.temperature", float("inf"), "search.temperature must be a finite number > 0, got inf"),
    ("search.decay", -0.1, "search.decay must be a finite number >= 0"),
    ("retrain.lr", 0, "retrain.lr must be a finite number > 0, got 0"),
    ("search.lr", "0.001", "search.lr must be a finite number > 0, got '0.001'"),
    ("search.p_op", 1.5, "search.p_op must be a probability"),
    ("retrain.momentum", 1.0, "retrain.momentum must be a finite number in [0, 1)"),
    ("seed", 2**32, "seed must be an integer in [0, 2**32), got 4294967296"),
    ("seed", -1, "seed must be an integer in [0, 2**32), got -1"),
    ("seed", 2809.0, "seed must be an integer"),
    ("search.population", True, "search.population must be an integer in [1, 1000000], got True"),
    ("search.depth_ramp", 1, "search.depth_ramp must be true or false, got 1"),
    ("search.keep", 16, "search.keep (16) must not exceed search.population (15)"),
    ("collect.top_k", 3, "collect.indices must be [0, ..., 2]"),
    ("retrain.recipe", "fancy", "retrain.recipe must be one of paper, modern, got 'fancy'"),
    ("search.device", "gpu", "search.device must be auto, cpu, cuda or cuda:N"),
    ("space.channels", [16, 16], "space.channels must be a list of 1 to 64 distinct"),
    ("space.blocks", [1, 1, 1], "space.blocks must be a list of 4 integers"),
    ("retrain.seeds", [1, 1], "retrain.seeds must be a list of 1 to 64 distinct seeds in [0, 2**32), or null, got [1, 1]"),
    ("retrain.seeds", [], "retrain.seeds must be a list of 1 to 64 distinct seeds"),
    ("retrain.seeds", [2**32], "retrain.seeds must be a list of 1 to 64 distinct seeds"),
    ("data.archive_md5", 123, "data.archive_md5 must be a 32-digit hex md5"),
    ("search.lrr", 0.1, "unknown setting search.lrr (did you mean search.lr?)"),
    ("search", None, "search must be a section (a mapping of settings), got None"),
    ("extra", 1, "unknown setting extra"),
]


@pytest.mark.parametrize("dotted, value, expected", BAD_VALUES)
def test_a_bad_value_is_named_in_one_line(dotted, value, expected):
    assert expected in refusal(with_value(dotted, value))


BAD_FILES = [
    (dump({k: v for k, v in PAPER_TREE.items() if k != "search"}),
     "search is missing; every section must be spelled out"),
    ("", "the file is empty"),
    ("# only comments\n", "the file is empty"),
    ("- seed\n- data\n", "must be a mapping of sections, got list"),
    (PAPER_TEXT.replace("  keep: 5\n", "  keep: 5\n  keep: 4\n"), "not valid YAML: duplicate key 'keep' (line"),
    (PAPER_TEXT.encode().replace(b"auto", b"aut\xff", 1), "not UTF-8 text (byte 0xff at offset"),
    ("seed: " + "[" * 100_000, "nested deeper than"),
    ('{"seed": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested deeper than"),
    ("seed: [unclosed\n", "not valid YAML"),
    ("seed: 1\n---\nseed: 2\n", "not valid YAML"),
    (PAPER_TEXT + "\n2: x\n", "setting names must be text, got 2"),
    (PAPER_TEXT + "\nother: &a [*a]\n", "unknown setting other"),
]


@pytest.mark.parametrize("text, expected", BAD_FILES)
def test_a_bad_file_is_refused_in_one_line(text, expected):
    assert expected in refusal(text)


def test_file_level_refusals(tmp_path):
    with pytest.raises(UserError, match="params file not found"):
        P.read(tmp_path / "missing.yaml")
    with pytest.raises(UserError, match="cannot read params file"):
        P.read(tmp_path)
    big = tmp_path / "big.yaml"
    big.write_text(PAPER_TEXT + "#" * P.MAX_FILE_BYTES)
    with pytest.raises(UserError, match="larger than"):
        P.read(big)


CLI_CASES = [
    (dump(with_value("search.lr", float("nan"))), "search.lr must be a finite number > 0, got nan"),
    (dump(with_value("seed", 2**32)), "seed must be an integer in [0, 2**32)"),
    (dump(with_value("search.population", True)), "search.population must be an integer"),
    (dump(with_value("search.lrr", 1.0)), "unknown setting search.lrr"),
    (dump({k: v for k, v in PAPER_TREE.items() if k != "retrain"}), "retrain is missing"),
    ("", "the file is empty"),
    (PAPER_TEXT + "seed: 1\n", "duplicate key 'seed'"),
]


@pytest.mark.parametrize("text, expected", CLI_CASES)
def test_the_cli_ends_a_bad_params_file_with_one_line_and_exit_2(cli, tmp_path, text, expected):
    (tmp_path / "params.yaml").write_text(text)
    proc = cli("genome", "random", "--params", tmp_path / "params.yaml", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"minigen: error: {tmp_path / 'params.yaml'}: ") and expected in line


# ---------------------------------------------------------------- fuzz: load, or one line


# Where a mutation lands: a whole section (or the seed), or one setting of a section.
KEYS = [(section,) for section in PAPER_TREE] + [
    (section, key) for section, body in PAPER_TREE.items() if isinstance(body, dict) for key in body]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-3, 2**33),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from([0, 1, 0.0, 1.0, 0.5, 2**32 - 1, 2**32, 10**400, "auto", "cpu", "cuda:0", "modern",
                     "digits", "bf16", "c58f30108f718f92721af3b95e74349a", [0, 1], [24, 40], [1, 1, 1, 1]]),
)
VALUES = SCALARS | st.lists(SCALARS, max_size=4) | st.dictionaries(st.text(max_size=6) | st.integers(), SCALARS,
                                                                    max_size=3)
MUTATIONS = st.lists(st.one_of(
    st.tuples(st.just("set"), st.sampled_from(KEYS), VALUES),
    st.tuples(st.just("drop"), st.sampled_from(KEYS), st.none()),
    st.tuples(st.just("extra"), st.sampled_from(KEYS), st.tuples(st.text(max_size=8) | st.integers(), VALUES)),
), min_size=1, max_size=4)


def mutate(mutations: list) -> dict:
    tree = copy.deepcopy(PAPER_TREE)
    for kind, path, value in mutations:
        node = tree
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        if kind == "set":
            node[path[-1]] = value
        elif kind == "drop":
            node.pop(path[-1], None)
        else:
            node[value[0]] = value[1]
    return tree


def loads_or_one_line(data, parse=P.parse) -> None:
    try:
        loaded = parse(data, "fuzz.yaml")
    except UserError as exc:
        message = str(exc)
        assert message.startswith("fuzz.yaml: ") and len(message.splitlines()) == 1, message
        return
    assert P.of(P.as_dict(loaded)) == loaded  # what loads is valid as it is passed on
    assert all(math.isfinite(v) for v in P.as_dict(loaded)["search"].values()
               if isinstance(v, float))


# Deadlines per input are generous: two busy cores; one params file takes ~10 ms.
FUZZ = {"deadline": timedelta(seconds=2), "database": None,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}


@hsettings(max_examples=2000, **FUZZ)
@given(MUTATIONS)
def test_fuzz_mutated_params_load_or_are_refused_in_one_line(mutations):
    loads_or_one_line(mutate(mutations), parse=P.from_tree)  # as parsed: no YAML, fast


@hsettings(max_examples=400, **FUZZ)
@given(MUTATIONS)
def test_fuzz_mutated_params_files_load_or_are_refused_in_one_line(mutations):
    loads_or_one_line(dump(mutate(mutations), allow_unicode=True))


@hsettings(max_examples=600, **FUZZ)
@given(st.integers(0, len(PAPER_TEXT)), st.integers(0, 40), st.binary(max_size=16))
def test_fuzz_damaged_params_bytes_load_or_are_refused_in_one_line(at, cut, junk):
    data = PAPER_TEXT.encode()
    loads_or_one_line(data[:at] + junk + data[at + cut:])
