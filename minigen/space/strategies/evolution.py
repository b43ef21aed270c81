"""The paper's evolution (DESIGN.md section 3), as it lives in `minigen.space.evolution`."""

from __future__ import annotations

from minigen import settings as P
from minigen.space import evolution as E

NAME = "evolution"


def build(params: P.Params, state: dict | None = None) -> E.Evolution:
    return E.Evolution(E.Settings.from_params(params), state)
