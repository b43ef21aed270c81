"""The MiniGen evolution (DESIGN.md section 3) as a pure, resumable state machine.

No torch here: `Evolution.step(evaluate)` runs one generation, where `evaluate(genomes)`
returns one outcome (`.accuracy`, `.error`) per genome, so the logic is tested with a
fake and the stage (`search.py`) plugs in the real evaluator. The whole state is plain
JSON, so a checkpoint is `json.dumps(evolution.state)`.

Choices the paper leaves open, made here once:

- Randomness: the population of generation `g` of round `r` is drawn from its own
  `random.Random`, seeded from sha256 of (seed, r, g). No generator state carries over
  between generations, so a checkpoint holds data only and resuming needs nothing else.
- Generation numbers count within a round (0 .. generations-1); `born` is the
  generation a member was created in, reset to 0 for the seeds of a restarted round.
- Fitness `ps = accuracy - decay * (generation - born)`, rounded to 12 decimals so the
  outputs read cleanly (0.45, not 0.44999999999999996).
- Ranking ties (equal fitness): the member earlier in the population wins. Survivors
  come first, in their previous rank order, then children in birth order.
- Survivors are not evaluated again: training is deterministic, so their accuracy stands.
- Duplicates may be born (rare: a mutation always changes what it touches). A genome this
  search has already evaluated is never evaluated again; its record says `repeat: true`.
- A generation's best is its highest accuracy (ties: higher fitness, then earlier in
  the population). It is the best reported per generation and the winner candidate.
- After a round, the restart test uses its last generation's best accuracy. On a restart
  the top `keep` by fitness seed the next round's generation 0 (`origin: seed`, born 0)
  and the rest of it is bred from them; otherwise generation 0 is random again.
- Failed trainings (an outcome with an error) count as accuracy 0 and stay in the race.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

from minigen import settings as P
from minigen.space import genome as G

STATE_VERSION = 1


class Outcome(Protocol):
    accuracy: float
    error: str | None


Evaluate = Callable[[list], Sequence[Outcome]]


@dataclass(frozen=True)
class Settings:
    """What the evolution reads from params.yaml (`seed`, `space`, `search`)."""

    seed: int
    population: int
    keep: int
    generations: int
    decay: float
    temperature: float
    restart_threshold: float
    winner_threshold: float
    winners: int
    max_rounds: int
    space: G.Space
    rates: G.MutationRates

    @classmethod
    def from_params(cls, params: P.Params | dict) -> "Settings":
        """From validated settings (`settings.of`); numbers as floats, as always."""
        params = P.of(params)
        search = params.search
        return cls(
            seed=params.seed,
            population=search.population,
            keep=search.keep,
            generations=search.generations,
            decay=float(search.decay),
            temperature=float(search.temperature),
            restart_threshold=float(search.restart_threshold),
            winner_threshold=float(search.winner_threshold),
            winners=search.winners,
            max_rounds=search.max_rounds,
            space=G.Space.from_settings(params.space),
            rates=G.MutationRates.from_settings(search),
        )


# ---------------------------------------------------------------- the rules


def fitness(accuracy: float, decay: float, generation: int, born: int) -> float:
    """The paper's performance score ps (eq. 1)."""
    return round(accuracy - decay * (generation - born), 12)


def rank(fitnesses: Sequence[float]) -> list[int]:
    """Population indices, best fitness first; ties go to the earlier member."""
    return sorted(range(len(fitnesses)), key=lambda i: (-fitnesses[i], i))


def best_of_generation(accuracies: Sequence[float], fitnesses: Sequence[float]) -> int:
    """Index of the generation's best: highest accuracy, then fitness, then earliest."""
    return min(range(len(accuracies)), key=lambda i: (-accuracies[i], -fitnesses[i], i))


def generation_rng(seed: int, round_: int, generation: int) -> random.Random:
    """The generator that draws the population of (round, generation)."""
    digest = hashlib.sha256(f"minigen-search:{seed}:{round_}:{generation}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def breed(
    parents: Sequence[G.Genome],
    parent_fitness: Sequence[float],
    count: int,
    rng: random.Random,
    settings: Settings,
) -> list[tuple[G.Genome, tuple[int, int]]]:
    """`count` children, each with the indices of its two parents.

    Parents are drawn with softmax(fitness / temperature) (paper eq. 2), then crossover
    per cell, then the three mutation levels.
    """
    weights = G.softmax_weights(parent_fitness, settings.temperature)
    children = []
    for _ in range(count):
        first, second = G.pick_parents(rng, weights)
        child = G.crossover(parents[first], parents[second], rng)
        children.append((G.mutate(child, rng, settings.rates, settings.space), (first, second)))
    return children


def _member(genome: G.Genome, born: int, origin: str, parents: list[str] | None = None) -> dict:
    member = {"genome": genome, "genome_id": G.genome_id(genome), "born": born, "origin": origin}
    if parents is not None:
        member["parents"] = parents
    return member


# ---------------------------------------------------------------- the state machine


class Evolution:
    """The search, one generation per `step`. `state` is JSON-serialisable and complete.

    state keys: round, generation (what `step` evaluates next), population (its members),
    evaluations (every distinct genome evaluated, in order first seen), history (one
    record per member per generation, without the genome), generations (one row each),
    winners (in order found), stopped (None, "winners" or "max_rounds").
    """

    def __init__(self, settings: Settings, state: dict | None = None):
        self.settings = settings
        if state is None:
            state = {
                "version": STATE_VERSION,
                "round": 0,
                "generation": 0,
                "population": self._random_population(0),
                "evaluations": [],
                "history": [],
                "generations": [],
                "winners": [],
                "stopped": None,
            }
        elif state.get("version") != STATE_VERSION:
            raise ValueError(f"evolution state version {state.get('version')!r}, expected {STATE_VERSION}")
        self.state = state
        self._evaluated = {record["genome_id"]: record for record in state["evaluations"]}

    @property
    def done(self) -> bool:
        return self.state["stopped"] is not None

    def run(self, evaluate: Evaluate, after_generation: Callable[[dict], None] | None = None) -> dict:
        """Step until a stop rule fires; `after_generation(row)` follows each step."""
        while not self.done:
            row = self.step(evaluate)
            if after_generation is not None:
                after_generation(row)
        return self.state

    def step(self, evaluate: Evaluate) -> dict:
        """Evaluate the current generation, record it, and prepare the next one."""
        if self.done:
            raise RuntimeError("the search has already stopped")
        state, cfg = self.state, self.settings
        round_, generation = state["round"], state["generation"]
        population = state["population"]

        fresh = self._evaluate_new(population, evaluate, round_, generation)
        records, seen = [], set()
        for member in population:
            gid = member["genome_id"]
            evaluated = self._evaluated[gid]
            record = {
                "round": round_,
                "generation": generation,
                "born": member["born"],
                "origin": member["origin"],
                "genome_id": gid,
                "accuracy": evaluated["accuracy"],
                "fitness": fitness(evaluated["accuracy"], cfg.decay, generation, member["born"]),
                "repeat": not (gid in fresh and gid not in seen),
            }
            if "parents" in member:
                record["parents"] = member["parents"]
            if evaluated["error"] is not None:
                record["error"] = evaluated["error"]
            seen.add(gid)
            records.append(record)
        state["history"].extend(records)

        accuracies = [r["accuracy"] for r in records]
        fitnesses = [r["fitness"] for r in records]
        best = records[best_of_generation(accuracies, fitnesses)]
        if best["accuracy"] > cfg.winner_threshold and all(
            w["genome_id"] != best["genome_id"] for w in state["winners"]
        ):
            state["winners"].append({key: best[key] for key in
                                     ("genome_id", "accuracy", "fitness", "round", "generation", "born")})
        row = {
            "round": round_,
            "generation": generation,
            "best_accuracy": best["accuracy"],
            "best_fitness": max(fitnesses),
            "best_born": best["born"],
            "mean_accuracy": round(sum(accuracies) / len(accuracies), 12),
            "evaluated": len(fresh),
            "winners": len(state["winners"]),
        }
        state["generations"].append(row)
        self._advance(population, fitnesses, best["accuracy"])
        return row

    # ------------------------------------------------------------ internals

    def _evaluate_new(self, population: list[dict], evaluate: Evaluate, round_: int, generation: int) -> set[str]:
        """Evaluate each genome this search has not seen, once; return their ids."""
        fresh: dict[str, G.Genome] = {}
        for member in population:
            if member["genome_id"] not in self._evaluated:
                fresh.setdefault(member["genome_id"], member["genome"])
        outcomes = list(evaluate(list(fresh.values()))) if fresh else []
        if len(outcomes) != len(fresh):
            raise ValueError(f"evaluate returned {len(outcomes)} outcomes for {len(fresh)} genomes")
        for (gid, genome), outcome in zip(fresh.items(), outcomes):
            record = {
                "genome_id": gid,
                "genome": genome,
                "accuracy": 0.0 if outcome.error is not None else float(outcome.accuracy),
                "error": outcome.error,
                "round": round_,
                "generation": generation,
            }
            self.state["evaluations"].append(record)
            self._evaluated[gid] = record
        return set(fresh)

    def _random_population(self, round_: int) -> list[dict]:
        rng = generation_rng(self.settings.seed, round_, 0)
        return [_member(G.random_genome(rng, self.settings.space), 0, "random")
                for _ in range(self.settings.population)]

    def _children(self, parents: list[dict], parent_fitness: list[float], round_: int, generation: int) -> list[dict]:
        rng = generation_rng(self.settings.seed, round_, generation)
        count = self.settings.population - len(parents)
        bred = breed([p["genome"] for p in parents], parent_fitness, count, rng, self.settings)
        return [_member(child, generation, "child", [parents[a]["genome_id"], parents[b]["genome_id"]])
                for child, (a, b) in bred]

    def _advance(self, population: list[dict], fitnesses: list[float], best_accuracy: float) -> None:
        state, cfg = self.state, self.settings
        round_, generation = state["round"], state["generation"]
        order = rank(fitnesses)[: cfg.keep]
        top = [population[i] for i in order]
        if len(state["winners"]) >= cfg.winners:
            state["stopped"] = "winners"
        elif generation + 1 < cfg.generations:
            survivors = [_member(m["genome"], m["born"], "survivor") for m in top]
            children = self._children(survivors, [fitnesses[i] for i in order], round_, generation + 1)
            state["generation"] = generation + 1
            state["population"] = survivors + children
        elif round_ + 1 >= cfg.max_rounds:
            state["stopped"] = "max_rounds"
        else:
            state["round"], state["generation"] = round_ + 1, 0
            if best_accuracy > cfg.restart_threshold:
                seeds = [_member(m["genome"], 0, "seed") for m in top]
                seed_fitness = [fitness(self._evaluated[m["genome_id"]]["accuracy"], cfg.decay, 0, 0) for m in seeds]
                state["population"] = seeds + self._children(seeds, seed_fitness, round_ + 1, 0)
            else:
                state["population"] = self._random_population(round_ + 1)


def summary(state: dict) -> dict:
    """Headline numbers of a search state (the deterministic part of metrics.json)."""
    history = state["history"]
    evaluations = state["evaluations"]
    return {
        "evaluations": len(evaluations),
        "failed": sum(1 for e in evaluations if e["error"] is not None),
        "best_accuracy": max((e["accuracy"] for e in evaluations), default=0.0),
        "best_fitness": max((r["fitness"] for r in history), default=0.0),
        "winners": len(state["winners"]),
        "rounds": state["round"] + 1,
        "generations": len(state["generations"]),
        "stopped": state["stopped"],
    }
