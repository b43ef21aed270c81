"""The content-keyed evaluation cache: keys, round trips, and damaged entries as misses."""

from __future__ import annotations

import os

import pytest

from minigen.store.cache import EvaluationCache, content_key

KEY_INPUTS = {"genome": "[...]", "mini_sha256": "ab" * 32, "recipe": {"lr": 0.001, "epochs": 20}}


def test_content_key_is_a_sha256_independent_of_dict_order():
    reordered = {"recipe": {"epochs": 20, "lr": 0.001}, "mini_sha256": "ab" * 32, "genome": "[...]"}
    key = content_key(KEY_INPUTS)
    assert len(key) == 64 and int(key, 16) >= 0
    assert content_key(reordered) == key


@pytest.mark.parametrize("change", [
    {"genome": "[.]"},
    {"mini_sha256": "cd" * 32},
    {"recipe": {"lr": 0.002, "epochs": 20}},
    {"recipe": {"lr": 0.001, "epochs": 20, "seed": 1}},
])
def test_any_changed_input_changes_the_key(change):
    assert content_key({**KEY_INPUTS, **change}) != content_key(KEY_INPUTS)


def test_put_then_get_round_trips_and_leaves_no_temp_files(tmp_path):
    cache = EvaluationCache(tmp_path)
    key = content_key(KEY_INPUTS)
    assert cache.get(key) is None
    cache.put(key, {"accuracy": 0.25, "error": None, "inputs": KEY_INPUTS})
    record = cache.get(key)
    assert record["accuracy"] == 0.25 and record["error"] is None and record["key"] == key
    assert cache.path(key).parent.name == key[:2]  # sharded
    assert [p.name for p in cache.path(key).parent.iterdir()] == [f"{key}.json"]


def test_a_failed_evaluation_round_trips_with_its_error(tmp_path):
    cache = EvaluationCache(tmp_path)
    cache.put("f" * 64, {"accuracy": 0.0, "error": "loss is nan after epoch 1"})
    assert cache.get("f" * 64)["error"] == "loss is nan after epoch 1"


@pytest.mark.parametrize("damage", [
    b"",  # a crash before anything was written (not possible with rename, but harmless)
    b'{"accuracy": 0.5, "err',  # truncated
    b"\xff\xfe not json",
    b'{"accuracy": 0.5, "error": null, "key": "0000"}',  # another key's record
    b'{"accuracy": 1.5, "error": null, "key": "KEY"}',  # out of range
    b'{"accuracy": "0.5", "error": null, "key": "KEY"}',
    b'{"error": null, "key": "KEY"}',
    b'{"accuracy": 0.5, "error": 3, "key": "KEY"}',
    b'[0.5]',
])
def test_a_damaged_entry_is_a_miss_and_put_overwrites_it(tmp_path, damage):
    cache = EvaluationCache(tmp_path)
    key = "a" * 64
    cache.path(key).parent.mkdir(parents=True)
    cache.path(key).write_bytes(damage.replace(b"KEY", key.encode()))
    assert cache.get(key) is None
    cache.put(key, {"accuracy": 0.5, "error": None})
    assert cache.get(key)["accuracy"] == 0.5


def test_a_folder_in_place_of_an_entry_is_a_miss(tmp_path):
    cache = EvaluationCache(tmp_path)
    cache.path("b" * 64).mkdir(parents=True)
    assert cache.get("b" * 64) is None


def test_an_unwritten_cache_root_is_created_on_first_put(tmp_path):
    cache = EvaluationCache(tmp_path / "deep" / "evaluations")
    cache.put("c" * 64, {"accuracy": 0.1, "error": None})
    assert os.path.isfile(cache.path("c" * 64))
