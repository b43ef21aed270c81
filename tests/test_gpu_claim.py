"""GPU claims without GPUs: real processes claim cards (lock files in a folder), a card is
never held twice, a waiting process gets the card another one gives back, and `kill -9`
frees a card for the next process. Each step waits for the processes' own messages."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap

import pytest

from minigen.training import gpu_claim

CARDS = ("GPU-aaaa", "GPU-bbbb")

# A holder: claim one card (waiting if need be), say which, hold it until a line arrives
# on stdin. Its "waiting" log record is forwarded to stdout too, so the test sees it.
HOLDER = textwrap.dedent("""
    import logging, sys
    from minigen.training import gpu_claim
    logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format="log %(message)s")
    cards, lock_dir = sys.argv[1].split(","), sys.argv[2]
    claim = gpu_claim.claim(cards, lock_dir, poll_seconds=0.05)
    print("claimed", *claim.cards, flush=True)
    sys.stdin.readline()
""")


class Holder:
    def __init__(self, lock_dir, cards=CARDS):
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, ",".join(cards), str(lock_dir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def next_event(self) -> str:
        """'waiting' or the card it claimed (blocks until the holder says so)."""
        line = self.process.stdout.readline()
        while line.startswith("log claimed"):  # the waiting claim's own success note
            line = self.process.stdout.readline()
        assert line, f"holder {self.process.pid} ended without a word (exit {self.process.wait()})"
        if line.startswith("log all"):
            return "waiting"
        assert line.startswith("claimed "), line
        return line.split()[1]

    def release(self) -> None:
        self.process.stdin.write("done\n")
        self.process.stdin.close()
        assert self.process.wait(timeout=60) == 0

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no cleanup code runs
        assert self.process.wait(timeout=60) == -signal.SIGKILL


def first_to_speak(holders: list[Holder]) -> Holder:
    streams = {holder.process.stdout: holder for holder in holders}
    ready, _, _ = select.select(list(streams), [], [], 120)  # a guard against hanging, not a timing
    assert ready, "no waiting holder claimed the freed card"
    return streams[ready[0]]


@pytest.fixture
def holders(tmp_path):
    started: list[Holder] = []

    def start(cards=CARDS) -> Holder:
        started.append(Holder(tmp_path, cards))
        return started[-1]

    yield start
    for holder in started:
        if holder.process.poll() is None:
            holder.kill()


def test_four_processes_on_two_cards_never_share_one(tmp_path, holders):
    first = [holders() for _ in range(2)]
    held = {holder.next_event(): holder for holder in first}
    assert set(held) == set(CARDS)  # two processes, two different cards

    waiting = [holders() for _ in range(2)]
    assert [holder.next_event() for holder in waiting] == ["waiting", "waiting"]

    # Each card given back goes to one waiting process; the other keeps waiting (its next
    # word is the second card, once that is given back, not the first).
    for freed in CARDS:
        held.pop(freed).release()
        taker = first_to_speak(waiting)
        assert taker.next_event() == freed
        waiting.remove(taker)
        held[freed] = taker
    assert not waiting
    for holder in held.values():
        holder.release()


def test_a_killed_holders_card_is_claimed_again(tmp_path, holders):
    victim = holders(cards=CARDS[:1])
    assert victim.next_event() == CARDS[0]
    assert gpu_claim.try_claim(CARDS[:1], tmp_path).cards == ()  # held: not for us

    waiter = holders(cards=CARDS[:1])
    assert waiter.next_event() == "waiting"
    victim.kill()
    assert waiter.next_event() == CARDS[0]  # the kernel dropped the dead process's lock
    waiter.release()
    with gpu_claim.try_claim(CARDS[:1], tmp_path) as mine:
        assert mine.cards == CARDS[:1]


def test_one_process_claims_several_cards_and_its_claims_exclude_each_other(tmp_path):
    cards = ("GPU-0", "GPU-1", "GPU-2")
    search = gpu_claim.claim(cards, tmp_path, count=2)
    assert search.cards == cards[:2]
    retrain = gpu_claim.try_claim(cards, tmp_path, count=2)
    assert retrain.cards == cards[2:]  # only what is left, though two were asked for
    assert gpu_claim.try_claim(cards, tmp_path).cards == ()
    search.release()
    again = gpu_claim.try_claim(cards, tmp_path, count=3)
    assert again.cards == cards[:2]
    assert f"pid {os.getpid()}" in gpu_claim.holders(cards, tmp_path)["GPU-0"]
    again.release()
    retrain.release()


def test_card_ids_become_safe_lock_file_names(tmp_path):
    path = gpu_claim.lock_path(tmp_path, "GPU-1a2b/../x y")
    assert path.parent == tmp_path and path.name == "GPU-1a2b_.._x_y.lock"


def test_claiming_nothing_is_a_programming_error(tmp_path):
    with pytest.raises(ValueError):
        gpu_claim.claim([], tmp_path)
    with pytest.raises(ValueError):
        gpu_claim.try_claim(CARDS, tmp_path, count=0)
