"""The study's figures: per-generation curves with a band over seeds (the paper's Fig. 3,
per arm) and each arm's accuracies seed by seed. Data functions are what the tests check;
drawing functions only plot what they get, as PNG bytes (Agg canvas, no timestamps)."""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from minigen.reporting import study_stats

CURVES = ("best_accuracy", "best_born")
STYLES = ("-", "--", ":", "-.")  # arms whose curves coincide (no_decay and evolution often do) stay visible
MARKERS = ("o", "s", "^", "D", "v")


def curves_data(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Per arm, per generation of round 0: mean and std over the seeds that reached it of
    the best accuracy and the best individual's birth generation (Fig. 3's two lines)."""
    data = {}
    for arm, arm_runs in runs.items():
        last = max((row["generation"] for run in arm_runs for row in run["curve"]), default=-1)
        arm_data = {"generation": [], "seeds": []} | {f"{k}_{s}": [] for k in CURVES for s in ("mean", "std")}
        for generation in range(last + 1):
            rows = [row for run in arm_runs for row in run["curve"] if row["generation"] == generation]
            arm_data["generation"].append(generation)
            arm_data["seeds"].append(len(rows))
            for key in CURVES:
                mean, std = study_stats.mean_std([row[key] for row in rows])
                arm_data[f"{key}_mean"].append(mean)
                arm_data[f"{key}_std"].append(std)
        data[arm] = arm_data
    return data


def accuracy_data(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Per arm, seed by seed: the best mini-set accuracy and the full test accuracy."""
    return {arm: {"seed": [r["seed"] for r in arm_runs],
                  "best_mini_accuracy": [r["best_mini_accuracy"] for r in arm_runs],
                  "test_accuracy": [r["test_accuracy"] for r in arm_runs]} for arm, arm_runs in runs.items()}


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, metadata={"Software": None})
    return buffer.getvalue()


def _band(axis, x: list, mean: list, std: list, index: int, label: str) -> None:
    x, mean, std = zip(*[(g, m, s or 0.0) for g, m, s in zip(x, mean, std) if m is not None]) if x else ((), (), ())
    axis.plot(x, mean, color=f"C{index}", linestyle=STYLES[index % len(STYLES)],
              marker=MARKERS[index % len(MARKERS)], markersize=4, label=label)
    axis.fill_between(x, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                      color=f"C{index}", alpha=0.12, linewidth=0)


def draw_fig3(data: dict[str, dict], seeds: int) -> bytes:
    figure = Figure(figsize=(7, 6.5), layout="constrained")
    accuracy_axis, born_axis = figure.subplots(2, 1, sharex=True)
    for index, (arm, curve) in enumerate(data.items()):
        _band(accuracy_axis, curve["generation"], curve["best_accuracy_mean"], curve["best_accuracy_std"], index, arm)
        _band(born_axis, curve["generation"], curve["best_born_mean"], curve["best_born_std"], index, arm)
    last = max((g for curve in data.values() for g in curve["generation"]), default=0)
    born_axis.plot([0, last], [0, last], color="grey", linestyle=":", linewidth=1, label="born this generation")
    accuracy_axis.set_ylabel("best accuracy (mini test set)")
    born_axis.set_ylabel("best individual's birth generation")
    born_axis.set_xlabel("generation (round 0)")
    born_axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    born_axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    accuracy_axis.legend(fontsize=8)
    born_axis.legend(fontsize=8)
    accuracy_axis.set_title(f"Per generation, mean ± std over {seeds} seeds (the paper's Fig. 3, per arm)")
    return _png(figure)


def draw_accuracy(data: dict[str, dict]) -> bytes:
    figure = Figure(figsize=(7, 3.8), layout="constrained")
    axes = figure.subplots(1, 2)
    titles = {"best_mini_accuracy": "best mini-set accuracy (search)", "test_accuracy": "full test accuracy (retrain)"}
    for axis, (key, title) in zip(axes, titles.items()):
        for position, (arm, values) in enumerate(data.items()):
            points = values[key]
            axis.scatter([position] * len(points), points, color=f"C{position}", alpha=0.6, s=18)
            mean, std = study_stats.mean_std(points)
            if mean is not None:
                axis.errorbar([position + 0.15], [mean], yerr=[std or 0.0], fmt="_", color="black", capsize=4)
        axis.set_xticks(range(len(data)), list(data), rotation=20)
        axis.set_title(title, fontsize=10)
    axes[0].set_ylabel("accuracy (each dot a seed; bar: mean ± std)")
    return _png(figure)
