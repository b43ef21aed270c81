"""Random search: the baseline an evolutionary search has to beat (README, "The study").

Genomes come from the same space by the same rules as the evolution's generation 0
(`genome.random_genome`, drawn from `evolution.generation_rng(seed, round, generation)`),
are trained by the same evaluator and cache, and are recorded in the same history,
generations, winners and evaluations. Only where new genomes come from differs: each one
is drawn at random, none is bred.

The schedule is the evolution's, so the per-generation curves of the two compare: a round
starts with `population` new genomes (the same first draws as the evolution's, so the two
share those evaluations in the cache); each later generation keeps the best `keep` by
fitness (free: their accuracy stands) and adds `population - keep` new ones. New means
never evaluated by this search: a draw that repeats one is drawn again, so a generation
evaluates exactly its count of new networks.

Stop rules: with `search.budget` null, the evolution's (`winners` winners, or
`max_rounds` rounds). With a budget, exactly that many distinct networks, whatever the
winners: the last generation draws only what is left and keeps more survivors. The study
sets the budget to what the reference arm's search of the same seed evaluated.
"""

from __future__ import annotations

from minigen import settings as P
from minigen.errors import UserError
from minigen.space import evolution as E
from minigen.space import genome as G

NAME = "random"
DRAWS_PER_GENOME = 1000  # a space this crowded is far smaller than the paper's (~1e16 genomes)


def build(params: P.Params, state: dict | None = None) -> "RandomSearch":
    return RandomSearch(E.Settings.from_params(params), params.search.budget, state)


def _member(genome: G.Genome, born: int, origin: str) -> dict:
    return {"genome": genome, "genome_id": G.genome_id(genome), "born": born, "origin": origin}


class RandomSearch(E.Evolution):
    """The evolution's bookkeeping (records, fitness, ranking, winners) with random births."""

    def __init__(self, settings: E.Settings, budget: int | None = None, state: dict | None = None):
        self.budget = budget
        self._evaluated = {}  # the first draw reads it, before Evolution.__init__ sets it from the state
        super().__init__(settings, state)

    def _random_population(self, round_: int) -> list[dict]:
        return self._draw(self.settings.population, round_, 0)

    def _draw(self, count: int, round_: int, generation: int) -> list[dict]:
        """`count` genomes new to this search, from the (round, generation) generator."""
        rng = E.generation_rng(self.settings.seed, round_, generation)
        taken, members = set(self._evaluated), []
        for _ in range(DRAWS_PER_GENOME * count):
            if len(members) == count:
                break
            genome = G.random_genome(rng, self.settings.space)
            member = _member(genome, generation, "random")
            if member["genome_id"] not in taken:
                taken.add(member["genome_id"])
                members.append(member)
        if len(members) < count:
            raise UserError(f"random search: fewer than {count} new genomes in {DRAWS_PER_GENOME * count} "
                            "draws; the space is nearly exhausted (widen `space` or lower search.budget)")
        return members

    def _next(self) -> tuple[int, int, int] | None:
        """(round, generation, new genomes) of the next generation, or None after the last."""
        cfg, round_, generation = self.settings, self.state["round"], self.state["generation"]
        if generation + 1 < cfg.generations:
            return round_, generation + 1, cfg.population - cfg.keep
        if round_ + 1 < cfg.max_rounds:
            return round_ + 1, 0, cfg.population
        return None

    def _advance(self, population: list[dict], fitnesses: list[float], best_accuracy: float) -> None:
        state, cfg = self.state, self.settings
        left = None if self.budget is None else self.budget - len(state["evaluations"])
        upcoming = self._next()
        if left is not None and left <= 0:
            state["stopped"] = "budget"
        elif left is None and len(state["winners"]) >= cfg.winners:
            state["stopped"] = "winners"
        elif upcoming is None:
            state["stopped"] = "max_rounds"
        else:
            round_, generation, fresh = upcoming
            fresh = fresh if left is None else min(fresh, left)
            kept = [population[i] for i in E.rank(fitnesses)[: cfg.population - fresh]]
            # A new round's carried members restart at generation 0, as the evolution's seeds do.
            survivors = [_member(m["genome"], m["born"], "survivor") if generation else _member(m["genome"], 0, "seed")
                         for m in kept]
            state["round"], state["generation"] = round_, generation
            state["population"] = survivors + self._draw(fresh, round_, generation)
