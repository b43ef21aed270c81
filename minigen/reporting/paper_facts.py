"""The paper's published results (Table III), kept as data: looked up by genome content.

`resources/published_genomes.json` holds the 10 genomes of Table III with the paper's
accuracy and its "Parameters" figure (the authors' summary tool counted every layer
twice, so that figure is about double the true count).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from minigen.space import genome as G

RESOURCE = "published_genomes.json"


@lru_cache(maxsize=1)
def published() -> tuple[dict, ...]:
    """The published entries, each with its `genome_id` (of the canonical genome) added."""
    text = resources.files("minigen").joinpath("resources", RESOURCE).read_text(encoding="utf-8")
    entries = json.loads(text)["genomes"]
    return tuple({**entry, "genome_id": G.genome_id(entry["genome"])} for entry in entries)


def by_genome_id(genome_id: str) -> dict | None:
    """The published entry whose genome has this id, or None."""
    for entry in published():
        if entry["genome_id"] == genome_id:
            return entry
    return None


def paper_ratio(entry: dict) -> float:
    """Table III's accuracy-to-parameter ratio: accuracy (a fraction) per million parameters."""
    return entry["paper_accuracy_percent"] / 100.0 / entry["paper_parameters_millions"]
