"""Where a training stage runs (`device.place`), on a machine faked to have three cards:
`auto` claims a free card per job, a search claims one per worker, a scheduler's or the
user's choice is taken as given, and the record says where it ran."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from minigen.store import paths
from minigen.training import device as D
from minigen.training import gpu_claim


@pytest.fixture
def cards(monkeypatch):
    """Three visible cards (torch.cuda faked), no scheduler; returns their names."""
    names = ["NVIDIA H200", "NVIDIA H200", "NVIDIA H200"]
    current = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(names))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: names[torch.device(d).index or 0])
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace(uuid=f"GPU-{i}-uuid"))
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(D, "_CLAIMS", [])
    yield SimpleNamespace(names=names, current=current)
    for claim in D._CLAIMS:
        claim.release()


def test_each_job_claims_its_own_card_and_records_it(cards):
    first, second = D.place("auto"), D.place("cuda")
    assert (first.device, second.device) == (torch.device("cuda", 0), torch.device("cuda", 1))
    assert first.chosen_by == second.chosen_by == "claim"
    assert cards.current == [first.device, second.device]  # each made current in its job
    assert second.record()["cards"] == [{"index": 1, "name": "NVIDIA H200"}]
    assert "cuda:1 (NVIDIA H200), chosen by claim" in second.describe()
    # Another process sees both cards held (the lock files in the cache dir).
    held = gpu_claim.try_claim(["GPU-0-uuid", "GPU-1-uuid", "GPU-2-uuid"], paths.cache_root() / "gpus", 3)
    assert held.cards == ("GPU-2-uuid",)
    held.release()


def test_a_search_claims_a_card_per_worker_of_one_kind(cards):
    cards.names[2] = "Tesla V100"  # another kind: results would differ, so never mixed in
    search = D.place("auto", cards=4)
    assert search.devices == (torch.device("cuda", 0), torch.device("cuda", 1))
    assert [c["index"] for c in search.record()["cards"]] == [0, 1]


def test_a_scheduler_s_cards_are_used_as_given(cards, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    cards.names[1:] = []  # SLURM shows the job its one card only
    placement = D.place("auto")
    assert placement.device == torch.device("cuda", 0) and placement.chosen_by == "scheduler"
    assert placement.record()["slurm_job_id"] == "4242"
    assert placement.record()["cuda_visible_devices"] == "3"
    assert "SLURM job 4242, CUDA_VISIBLE_DEVICES=3" in placement.describe()
    assert not (paths.cache_root() / "gpus").exists()  # nothing claimed


def test_the_users_choice_and_the_cpu_claim_nothing(cards):
    assert D.place("cuda:2").devices == (torch.device("cuda", 2),)
    assert D.place("cuda:2").chosen_by == "params"
    cpu = D.place("cpu")
    assert cpu.record() == {"device": "cpu", "cards": [], "chosen_by": "cpu",
                            "slurm_job_id": None, "cuda_visible_devices": None}
    assert not (paths.cache_root() / "gpus").exists()


def test_a_single_visible_card_is_used_without_a_claim(cards):
    cards.names[1:] = []
    placement = D.place("auto")
    assert placement.device == torch.device("cuda", 0) and placement.chosen_by == "only card"
