"""The `collect` stage: the genomes to retrain, from the search's results.

`genome_{i}.json` for i < top_k: the winners in the order found (their index is the
paper's "order in which the network was found"), then, when the search found fewer, the
best other genomes it evaluated, by mini-set accuracy. Failed evaluations never fill a
slot; accuracy ties go to the genome evaluated first.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from minigen.store import atomic
from minigen.errors import UserError

WINNER = "winner"
BEST_OTHER = "best_other"
GENOME_FILE = re.compile(r"genome_(\d+)\.json")


def read_evaluations(path: Path) -> list[dict]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"{path} not found (run `minigen search` first)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path} ({type(exc).__name__}): run `minigen search` again") from None
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(_record(json.loads(line)))
        except (ValueError, RecursionError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc) or type(exc).__name__
            raise UserError(f"{path} line {number} is not a search record ({reason})") from None
    return records


def _record(record) -> dict:
    """An evaluation or winner record as `search` writes it (ValueError if not)."""
    if not isinstance(record, dict) or not {"genome_id", "genome", "accuracy"} <= set(record):
        raise ValueError("it needs genome_id, genome and accuracy")
    accuracy = record["accuracy"]
    if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) or not isinstance(record["genome_id"], str):
        raise ValueError("its accuracy must be a number and its genome_id text")
    return record


def choose(winners: list[dict], evaluations: list[dict], top_k: int) -> list[dict]:
    """The top_k picks, each {"index", "genome", "genome_id", "source", "search"}."""
    picks = [(w, WINNER) for w in winners[:top_k]]
    if len(picks) < top_k:
        taken = {w["genome_id"] for w in winners}
        others = [e for e in evaluations if e.get("error") is None and e["genome_id"] not in taken]
        others.sort(key=lambda e: -e["accuracy"])  # stable: ties keep the order evaluated
        if len(picks) + len(others) < top_k:
            raise UserError(
                f"collect.top_k is {top_k}, but the search has only {len(picks)} winner(s) and "
                f"{len(others)} other successfully evaluated genome(s)"
            )
        picks += [(e, BEST_OTHER) for e in others[: top_k - len(picks)]]
    return [
        {
            "index": index,
            "genome": record["genome"],
            "genome_id": record["genome_id"],
            "source": source,
            "search": {k: v for k, v in record.items() if k not in ("genome", "genome_id", "index", "error")},
        }
        for index, (record, source) in enumerate(picks)
    ]


def collect(top_k: int, search_dir: str | Path, out_dir: str | Path) -> list[dict]:
    search_dir, out_dir = Path(search_dir), Path(out_dir)
    winners = atomic.read_json(search_dir / "winners.json", "search results")
    try:
        winners = [_record(w) for w in winners] if isinstance(winners, list) else None
    except ValueError:
        winners = None
    if winners is None:
        raise UserError(f"{search_dir / 'winners.json'} must hold a list of winners as `minigen search` "
                        "writes them (run it again)")
    picks = choose(winners, read_evaluations(search_dir / "evaluations.jsonl"), top_k)
    atomic.ensure_dir(out_dir)
    # File by file (other files in the folder stay), under the folder's lock: two runs take turns.
    with atomic.output_lock(out_dir):
        for pick in picks:
            atomic.write_json(out_dir / f"genome_{pick['index']}.json", pick)
        for stale in out_dir.iterdir():
            match = GENOME_FILE.fullmatch(stale.name)
            if match and int(match.group(1)) >= top_k:
                stale.unlink()
    return picks
