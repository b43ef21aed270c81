"""The schema of a saved evolution state: what a checkpoint must hold to be resumed.

A checkpoint's checksum catches an edited or torn file; this catches one that is intact
but of the wrong shape (a bug, a hand-made file), which would otherwise fail on every
rerun, or, worse, resume into a different result. `problem` says what is wrong, in a
few words, or returns None.
"""

from __future__ import annotations

import math
from typing import Any

from minigen.space import evolution as E
from minigen.space import genome as G

STATE_KEYS = ("version", "round", "generation", "population", "evaluations", "history", "generations",
              "winners", "stopped")
STOPPED = (None, "winners", "max_rounds", "budget")  # budget: a random search's (strategies/)
GENERATION_ROW = ("round", "generation", "best_accuracy", "best_fitness", "best_born", "mean_accuracy",
                  "evaluated", "winners")
WINNER_KEYS = ("genome_id", "accuracy", "fitness", "round", "generation", "born")


class Invalid(ValueError):
    """A state that cannot be resumed."""


def _int(value: Any, what: str, low: int = 0) -> int:
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
        raise Invalid(f"{what} must be an integer >= {low}, got {value!r}")
    return value


def _number(value: Any, what: str) -> float:
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)):
        raise Invalid(f"{what} must be a finite number, got {value!r}")
    return value


def _records(state: dict, name: str, keys: tuple[str, ...]) -> list[dict]:
    records = state[name]
    if not isinstance(records, list) or not all(isinstance(r, dict) and set(keys) <= set(r) for r in records):
        raise Invalid(f"'{name}' must be a list of objects with {', '.join(keys)}")
    return records


def _genome(record: dict, space: G.Space, what: str) -> None:
    try:
        genome = G.parse(record["genome"], space)
    except G.GenomeError as exc:
        raise Invalid(f"{what}: {exc}") from None
    if record["genome_id"] != G.genome_id(genome):
        raise Invalid(f"{what}: its genome_id does not match its genome")


def _check_evaluations(state: dict, space: G.Space) -> set[str]:
    ids = set()
    for record in _records(state, "evaluations", ("genome_id", "genome", "accuracy", "error")):
        _genome(record, space, "an evaluation")
        if not 0.0 <= _number(record["accuracy"], "an evaluation's accuracy") <= 1.0:
            raise Invalid("an evaluation's accuracy lies outside [0, 1]")
        if record["error"] is not None and not isinstance(record["error"], str):
            raise Invalid("an evaluation's error must be null or text")
        ids.add(record["genome_id"])
    return ids


def _check_population(state: dict, settings: E.Settings) -> None:
    population = _records(state, "population", ("genome", "genome_id", "born", "origin"))
    if state["stopped"] is None and len(population) != settings.population:
        raise Invalid(f"the population holds {len(population)} members, search.population is {settings.population}")
    for member in population:
        _genome(member, settings.space, "a population member")
        _int(member["born"], "a member's born")


def _check_records(state: dict, evaluated: set[str]) -> None:
    for record in _records(state, "history", ("genome_id", "accuracy", "fitness", "born")):
        _number(record["fitness"], "a history record's fitness")
        _number(record["accuracy"], "a history record's accuracy")
        if record["genome_id"] not in evaluated:
            raise Invalid("a history record names a genome that was never evaluated")
    for row in _records(state, "generations", GENERATION_ROW):
        for key in GENERATION_ROW:
            _number(row[key], f"generations' {key}")
    for winner in _records(state, "winners", WINNER_KEYS):
        if winner["genome_id"] not in evaluated:
            raise Invalid("a winner names a genome that was never evaluated")


def check(state: Any, settings: E.Settings) -> None:
    """Raise `Invalid` unless `state` is one `Evolution(settings, state)` can resume."""
    if not isinstance(state, dict) or not set(STATE_KEYS) <= set(state):
        raise Invalid(f"the state must be an object with {', '.join(STATE_KEYS)}")
    if state["version"] != E.STATE_VERSION:
        raise Invalid(f"state version {state['version']!r}, expected {E.STATE_VERSION}")
    if state["stopped"] not in STOPPED:
        raise Invalid(f"'stopped' must be one of {STOPPED}, got {state['stopped']!r}")
    if _int(state["round"], "round") >= settings.max_rounds:
        raise Invalid(f"round {state['round']} is past search.max_rounds")
    if _int(state["generation"], "generation") >= settings.generations:
        raise Invalid(f"generation {state['generation']} is past search.generations")
    evaluated = _check_evaluations(state, settings.space)
    _check_population(state, settings)
    _check_records(state, evaluated)


def problem(state: Any, settings: E.Settings) -> str | None:
    """What keeps `state` from being resumed, or None."""
    try:
        check(state, settings)
    except Invalid as exc:
        return str(exc)
    return None
