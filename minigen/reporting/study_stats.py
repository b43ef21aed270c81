"""The study's statistics: mean ± std over seeds, and a rank test of an arm against the
reference that says so, in words, when its seeds are too few to tell anything.

Mann-Whitney U (two-sided) compares the arms' values over seeds without assuming a
distribution; its exact test can never give less than 2 / C(n + m, n) with n and m seeds,
so 3 against 3 seeds can never reach p < 0.05 (its floor is 0.10), 4 against 4 can (0.029).
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

ALPHA = 0.05


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """The mean and the sample standard deviation (n - 1); None where undefined."""
    n = len(values)
    if n == 0:
        return None, None
    mean = sum(values) / n
    if n == 1:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def smallest_p(n: int, m: int) -> float:
    """The smallest two-sided p-value an exact rank test of n against m values can give."""
    return min(1.0, 2 / math.comb(n + m, n)) if n and m else 1.0


def seeds_needed(alpha: float = ALPHA) -> int:
    """The fewest seeds per arm whose rank test can reach p < alpha."""
    k = 1
    while smallest_p(k, k) >= alpha:
        k += 1
    return k


def rank_test(values: Sequence[float], reference: Sequence[float], alpha: float = ALPHA) -> dict:
    """{"p_value", "seeds", "reference_seeds", "note"}: note is a sentence when the seeds
    are too few for any difference to reach p < alpha."""
    n, m = len(values), len(reference)
    p_value = None
    if n and m:
        from scipy.stats import mannwhitneyu

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = float(mannwhitneyu(values, reference, alternative="two-sided").pvalue)
        p_value = None if math.isnan(p) else p
    floor = smallest_p(n, m)
    note = None
    if floor >= alpha:
        note = (f"{n} against {m} seeds are too few to tell: the smallest p-value a two-sided rank test "
                f"can give them is {floor:.2f}, not below {alpha}; {seeds_needed(alpha)} seeds per arm can")
    return {"p_value": p_value, "seeds": n, "reference_seeds": m, "note": note}


def verdict(what: str, test: dict, alpha: float = ALPHA) -> str:
    """A few words on one comparison; a test whose seeds are too few says only its p-value
    (its `note` says why, once for the whole table)."""
    if test["p_value"] is None:
        return f"{what}: no test"
    if test["note"] is not None or test["p_value"] >= alpha:
        return f"{what} p = {test['p_value']:.2f}"
    return f"{what} p = {test['p_value']:.3f}, a difference at {alpha}"
