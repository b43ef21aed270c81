"""The genome files `collect` writes and `retrain` and `report` read: one record each,
{"index", "genome", "genome_id", "source", "search"}, checked before anything is built."""

from __future__ import annotations

from pathlib import Path

from minigen.errors import UserError
from minigen.space import genome as G
from minigen.store import atomic, formats


def load_record(genomes_dir: str | Path, index: int) -> dict:
    """The i-th collected genome's record, validated; its genome in canonical form."""
    path = formats.genome_file(genomes_dir, index)
    if not path.is_file():
        raise UserError(f"genome file not found: {path} (run `minigen collect` first)")
    record = atomic.read_json(path, "genome file")
    if not isinstance(record, dict) or "genome" not in record:
        raise UserError(f"{path} is malformed: expected an object with a 'genome' key (as `minigen collect` writes)")
    try:
        genome = G.parse(record["genome"])
    except G.GenomeError as exc:
        raise UserError(f"{path} is malformed: {exc}") from None
    genome_id = G.genome_id(genome)
    if record.get("genome_id", genome_id) != genome_id:
        raise UserError(f"{path} is malformed: its genome_id {record['genome_id']!r} does not match its genome ({genome_id})")
    search = record.get("search") or {}
    if not isinstance(search, dict):
        raise UserError(f"{path} is malformed: 'search' must be an object")
    return {**record, "genome": genome, "genome_id": genome_id, "search": search}
