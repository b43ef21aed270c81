"""Search strategies: one module each in this folder, one small interface.

A strategy is a resumable state machine over the same search space, evaluator, records and
outputs: `step(evaluate)` evaluates one generation and returns its row of generations.csv,
`run` steps until a stop rule fires, and `state` is plain JSON (the search's checkpoint,
checked by `space.state`). So `minigen search`, its checkpoints, `collect`, `retrain` and
`report` never ask which strategy ran.

A module here defines `NAME` (the value of `search.strategy`) and `build(params, state)`;
this package finds it, so a third strategy is one new module, plus its name in
`settings.STRATEGIES` (settings sits below this layer and cannot import it).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Protocol

from minigen import settings as P
from minigen.space import evolution as E


class Strategy(Protocol):
    settings: E.Settings
    state: dict

    @property
    def done(self) -> bool: ...

    def step(self, evaluate: E.Evaluate) -> dict: ...

    def run(self, evaluate: E.Evaluate, after_generation: Callable[[dict], None] | None = None) -> dict: ...


def _registry() -> dict[str, Callable[[P.Params, dict | None], Strategy]]:
    builders = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        builders[module.NAME] = module.build
    return builders


BUILDERS = _registry()


def names() -> tuple[str, ...]:
    return tuple(sorted(BUILDERS))


def create(params: P.Params | dict, state: dict | None = None) -> Strategy:
    """The strategy `search.strategy` names, fresh or resumed from a checkpoint's `state`."""
    params = P.of(params)
    return BUILDERS[params.search.strategy](params, state)
