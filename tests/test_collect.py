"""The `collect` stage: winners first, then the best others, each file marked with its source."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from archives import write_params

from minigen import cli
from minigen.stages import collect as C
from minigen.space import genome as G
from minigen.errors import UserError

SPACE = G.Space(channels=(8, 16))


def genomes(n: int, seed: int = 0) -> list[list]:
    rng = random.Random(seed)
    return [G.random_genome(rng, SPACE) for _ in range(n)]


def write_search(folder: Path, winners: list[tuple[list, float]], evaluations: list[tuple[list, float, str | None]]) -> Path:
    """A search output folder in `minigen search`'s format (only what collect reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "winners.json").write_text(json.dumps([
        {"index": i, "genome": g, "genome_id": G.genome_id(g), "accuracy": acc, "fitness": acc,
         "round": 0, "generation": i, "born": i}
        for i, (g, acc) in enumerate(winners)
    ]))
    (folder / "evaluations.jsonl").write_text("".join(
        json.dumps({"genome": g, "genome_id": G.genome_id(g), "accuracy": acc, "error": error,
                    "round": 0, "generation": i}) + "\n"
        for i, (g, acc, error) in enumerate(evaluations)
    ))
    return folder


def read_picks(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("genome_*.json"), key=lambda p: int(p.stem[7:]))]


def test_winners_in_order_then_best_others_by_accuracy(tmp_path):
    g = genomes(7)
    search = write_search(
        tmp_path / "search",
        winners=[(g[3], 0.5), (g[1], 0.45)],
        evaluations=[(g[0], 0.3, None), (g[1], 0.45, None), (g[2], 0.9, "loss is nan"),
                     (g[3], 0.5, None), (g[4], 0.35, None), (g[5], 0.3, None), (g[6], 0.2, None)],
    )
    C.collect(5, search, tmp_path / "out")
    picks = read_picks(tmp_path / "out")
    assert [p["index"] for p in picks] == [0, 1, 2, 3, 4]
    assert [p["genome_id"] for p in picks] == [G.genome_id(x) for x in (g[3], g[1], g[4], g[0], g[5])]
    assert [p["source"] for p in picks] == ["winner", "winner", "best_other", "best_other", "best_other"]
    # failed g[2] never fills a slot; the tie 0.3 goes to g[0], evaluated before g[5]
    assert picks[0]["search"] == {"accuracy": 0.5, "fitness": 0.5, "round": 0, "generation": 0, "born": 0}
    assert picks[3]["search"] == {"accuracy": 0.3, "round": 0, "generation": 0}
    assert all(G.genome_id(p["genome"]) == p["genome_id"] for p in picks)


def test_more_winners_than_top_k_keeps_the_first_found(tmp_path):
    g = genomes(4)
    search = write_search(tmp_path / "search", winners=[(x, 0.5) for x in g], evaluations=[(x, 0.5, None) for x in g])
    picks = C.collect(2, search, tmp_path / "out")
    assert [p["genome_id"] for p in picks] == [G.genome_id(g[0]), G.genome_id(g[1])]
    assert {p["source"] for p in picks} == {"winner"}


def test_too_few_genomes_is_an_error_that_writes_nothing(tmp_path):
    g = genomes(3)
    search = write_search(tmp_path / "search", winners=[(g[0], 0.5)],
                          evaluations=[(g[0], 0.5, None), (g[1], 0.0, "out of memory"), (g[2], 0.2, None)])
    out = tmp_path / "out"
    out.mkdir()
    (out / "genome_0.json").write_text("earlier")
    with pytest.raises(UserError, match="top_k is 3.*1 winner.*1 other"):
        C.collect(3, search, out)
    assert [p.name for p in out.iterdir()] == ["genome_0.json"]
    assert (out / "genome_0.json").read_text() == "earlier"


def test_stale_genome_files_beyond_top_k_are_removed(tmp_path):
    g = genomes(3)
    search = write_search(tmp_path / "search", winners=[], evaluations=[(x, 0.1 * i, None) for i, x in enumerate(g)])
    out = tmp_path / "out"
    out.mkdir()
    for name in ("genome_2.json", "genome_10.json", "notes.txt"):
        (out / name).write_text("stale")
    C.collect(2, search, out)
    assert sorted(p.name for p in out.iterdir()) == ["genome_0.json", "genome_1.json", "notes.txt"]
    assert [p["source"] for p in read_picks(out)] == ["best_other", "best_other"]


def test_cli_collect_reads_top_k_from_params(tmp_path, capsys):
    g = genomes(4)
    search = write_search(tmp_path / "results" / "search", winners=[(g[2], 0.6)],
                          evaluations=[(x, 0.1 * i, None) for i, x in enumerate(g)])
    write_params(tmp_path, collect={"top_k": 3})
    out = tmp_path / "results" / "genomes"
    code = cli.main(["collect", "--params", str(tmp_path / "params.yaml"), "--search", str(search), "--out", str(out)])
    assert code == 0
    assert "3 genomes (1 winners, 2 best others)" in capsys.readouterr().out
    picks = read_picks(out)
    assert [p["genome_id"] for p in picks] == [G.genome_id(x) for x in (g[2], g[3], g[1])]
    assert G.parse(json.loads((out / "genome_0.json").read_text())) == G.parse(g[2])  # loadable as a genome


def test_cli_collect_without_a_search_is_one_line(tmp_path, capsys):
    write_params(tmp_path)
    code = cli.main(["collect", "--params", str(tmp_path / "params.yaml"), "--search", str(tmp_path / "none"),
                     "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "search results not found" in err
    assert not (tmp_path / "out").exists()
