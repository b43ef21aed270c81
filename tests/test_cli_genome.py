"""`minigen genome info|random` as a user runs them: a fresh process each time."""

from __future__ import annotations

import json
import random

import pytest
from archives import write_params

from minigen.space import genome as G
from minigen.model import network as N
from minigen.cli import main

GOOD = [
    [".", 1, ["identity", "3*3 conv", "3*3 conv"]],
    [256, 1, ["3*3 avgpool", "3*3 maxpool", "3*3 dil conv", "3*3 dil conv"]],
    [40, 1, ["3*3 avgpool", "3*3 dil conv", "5*5 dconv"]],
    [128, 1, ["5*5 dconv", "3*3 conv"]],
    [64, 1, ["1*7-7*1 conv", "3*3 avgpool", "3*3 avgpool"]],
]  # published genome 1


def edited(cell: int, slot: int, value) -> list:
    genome = json.loads(json.dumps(GOOD))
    genome[cell][slot] = value
    return genome


BAD_INPUTS = {
    "unknown op": (json.dumps(edited(2, 2, ["3*3 avgpool", "9*9 conv"])), "unknown op"),
    "identity not first": (json.dumps(edited(3, 2, ["5*5 dconv", "identity"])), "identity"),
    "four cells": (json.dumps(GOOD[:4]), "5 cells"),
    "six cells": (json.dumps(GOOD + [GOOD[1]]), "5 cells"),
    "normal list of 1": (json.dumps(edited(1, 2, ["3*3 conv"])), "2 to 4"),
    "normal list of 5": (json.dumps(edited(1, 2, ["3*3 conv"] * 5)), "2 to 4"),
    "input list too long": (json.dumps(edited(0, 2, ["identity", "3*3 conv", "3*3 conv", "3*3 conv"])), "input cell"),
    "input list too short": (json.dumps(edited(0, 2, ["3*3 conv"])), "input cell"),
    "zero channels": (json.dumps(edited(2, 0, 0)), "channels"),
    "negative channels": (json.dumps(edited(2, 0, -40)), "channels"),
    "zero blocks": (json.dumps(edited(3, 1, 0)), "blocks"),
    "negative blocks": (json.dumps(edited(3, 1, -2)), "blocks"),
    "maxpool in input cell": (json.dumps(edited(0, 2, ["3*3 maxpool", "3*3 conv"])), "not allowed in the input cell"),
    "unreadable JSON": ('[[".", 1, ["identity", "3*3 conv"', "not valid JSON"),
    "not UTF-8": (b"\xff\xfe[", "cannot read"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_genome_files_end_with_one_line_and_exit_code_2(cli, tmp_path, case):
    text, fragment = BAD_INPUTS[case]
    path = tmp_path / "genome.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    proc = cli("genome", "info", path)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("minigen: error: ") and fragment in lines[0]
    assert proc.stdout == ""


def test_missing_genome_file(cli, tmp_path):
    proc = cli("genome", "info", tmp_path / "nowhere.json")
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1 and "not found" in proc.stderr


def test_info_json_gives_params_flops_and_cells(cli, tmp_path):
    path = tmp_path / "genome.json"
    path.write_text(json.dumps({"genome": GOOD, "note": "an object with a genome key"}))
    proc = cli("genome", "info", path, "--json", check=True)
    out = json.loads(proc.stdout)
    net = N.build(GOOD)
    assert out["params"] == N.count_params(net) and out["flops"] == N.count_flops(net)
    assert out["genome_id"] == G.genome_id(GOOD)
    assert sum(row["params"] for row in out["cells"]) == out["params"]
    assert proc.stderr == ""


# The cases below run `minigen` in this process (torch is loaded once, not per case).


def test_info_prints_a_readable_summary(tmp_path, capsys):
    path = tmp_path / "genome.json"
    path.write_text(json.dumps(GOOD))
    assert main(["genome", "info", str(path)]) == 0
    text = capsys.readouterr().out
    size = N.complexity(GOOD)
    assert f"{size['params']:,}" in text and f"{size['flops']:,}" in text and G.genome_id(GOOD) in text
    assert "1*7-7*1 conv, 3*3 avgpool, 3*3 avgpool" in text


@pytest.mark.parametrize("spelling", [".", None, "inf", 3])
def test_info_accepts_every_input_cell_channel_spelling(tmp_path, capsys, spelling):
    path = tmp_path / "genome.json"
    path.write_text(json.dumps(edited(0, 0, spelling)))
    assert main(["genome", "info", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["genome_id"] == G.genome_id(GOOD) and out["genome"][0][0] == "."


def test_random_is_valid_and_reproducible(cli, tmp_path):
    first = cli("genome", "random", "--seed", "7", cwd=tmp_path, check=True).stdout
    again = cli("genome", "random", "--seed", "7", cwd=tmp_path, check=True).stdout
    other = cli("genome", "random", "--seed", "8", cwd=tmp_path, check=True).stdout
    assert first == again != other
    for text in (first, other):
        G.loads(text, G.Space())
    assert G.loads(first) == G.random_genome(random.Random(7))


def test_random_samples_the_space_of_params_yaml(cli, tmp_path):
    write_params(tmp_path, seed=5, space={"channels": [8, 16], "blocks": [1, 2, 3, 4]})
    genome = G.loads(cli("genome", "random", cwd=tmp_path, check=True).stdout)
    G.parse(genome, G.Space(channels=(8, 16), blocks=(1, 2, 3, 4)))
    assert [cell[1] for cell in genome[1:]] == [1, 2, 3, 4]
    same = G.loads(cli("genome", "random", "--seed", "5", cwd=tmp_path, check=True).stdout)
    assert same == genome  # the seed defaults to params.yaml's


def test_random_refuses_a_bad_params_file(cli, tmp_path):
    write_params(tmp_path, space={"channels": [0]})
    proc = cli("genome", "random", cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1


def test_a_reader_that_stops_early_is_no_error(tmp_path):
    import subprocess
    import sys

    # As typed: `minigen genome random | head -2`; and the reader gone before the first byte.
    shell = subprocess.run(f"{sys.executable} -m minigen genome random | head -2", shell=True, cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert shell.returncode == 0 and len(shell.stdout.splitlines()) == 2 and shell.stderr == ""
    proc = subprocess.Popen([sys.executable, "-m", "minigen", "genome", "random"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    assert proc.wait(timeout=120) == 141  # 128 + SIGPIPE, as a shell would report it
    assert proc.stderr.read() == b""
