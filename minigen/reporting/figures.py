"""The report's figures: each one a function that returns its data, and one that draws it.

The data functions are what the tests check; the drawing functions only plot what they
are given, as PNG bytes (matplotlib's Agg canvas, no pyplot state, no timestamps).
"""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

BORN_COLOUR = "tab:red"  # the paper's Fig. 3/4 colours: red generation, green accuracy
ACCURACY_COLOUR = "tab:green"
MEAN_COLOUR = "tab:blue"


# ---------------------------------------------------------------- data


def fig4_data(generations: list[dict]) -> dict:
    """Per generation of the search (rounds one after another, as run): the best
    individual's birth generation and its mini-set accuracy (the paper's Fig. 4), and the
    population's mean accuracy (the search curve; None where not recorded)."""
    rows = sorted(generations, key=lambda r: (int(r["round"]), int(r["generation"])))
    rounds = [int(r["round"]) for r in rows]
    return {
        "step": list(range(len(rows))),
        "round": rounds,
        "generation": [int(r["generation"]) for r in rows],
        "best_born": [int(r["best_born"]) for r in rows],
        "best_accuracy": [float(r["best_accuracy"]) for r in rows],
        "mean_accuracy": [None if r.get("mean_accuracy") is None else float(r["mean_accuracy"]) for r in rows],
        "round_starts": [step for step in range(1, len(rows)) if rounds[step] != rounds[step - 1]],
    }


def mini_vs_full_data(entries: list[dict]) -> dict:
    """Mini-set accuracy (search) against full test accuracy (retrain), by genome index;
    genomes without a mini-set accuracy are left out."""
    kept = sorted((e for e in entries if e.get("mini_accuracy") is not None), key=lambda e: e["index"])
    return {
        "index": [e["index"] for e in kept],
        "mini_accuracy": [e["mini_accuracy"] for e in kept],
        "test_accuracy": [e["test_accuracy"] for e in kept],
    }


def curves_data(entries: list[dict]) -> dict[int, dict]:
    """Test accuracy per retraining epoch, per genome index: the mean over its seeds, and
    the lowest and highest seed's."""
    data = {}
    for e in sorted(entries, key=lambda e: e["index"]):
        per_epoch = list(zip(*([row["test_accuracy"] for row in curve] for curve in e["curves"])))
        data[e["index"]] = {
            "epoch": [row["epoch"] for row in e["curves"][0]],
            "test_accuracy": [sum(values) / len(values) for values in per_epoch],
            "low": [min(values) for values in per_epoch],
            "high": [max(values) for values in per_epoch],
            "seeds": len(e["curves"]),
        }
    return data


# ---------------------------------------------------------------- drawing


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, metadata={"Software": None})
    return buffer.getvalue()


def _generation_axis(axis, data: dict) -> None:
    axis.set_xlabel("generation (rounds one after another)" if data["round_starts"] else "generation")
    for step in data["round_starts"]:
        axis.axvline(step - 0.5, color="grey", linestyle=":", linewidth=1)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))


def draw_fig4(data: dict) -> bytes:
    figure = Figure(figsize=(7, 4.4), layout="constrained")
    born_axis = figure.add_subplot()
    # Two y axes can put the series on the same pixels: the front one (accuracy, on the
    # twin axis) is dashed with hollow markers, so the solid red one shows through it.
    born = born_axis.plot(data["step"], data["best_born"], color=BORN_COLOUR, marker="o", markersize=5,
                          linewidth=2, label="birth generation of the best individual (left)")
    _generation_axis(born_axis, data)
    born_axis.set_ylabel("best individual's generation", color=BORN_COLOUR)
    born_axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    accuracy_axis = born_axis.twinx()
    accuracy = accuracy_axis.plot(data["step"], data["best_accuracy"], color=ACCURACY_COLOUR, marker="s",
                                  markersize=7, markerfacecolor="none", linestyle="--", linewidth=1.5,
                                  label="its accuracy on the mini test set (right)")
    accuracy_axis.set_ylabel("best accuracy (mini test set)", color=ACCURACY_COLOUR)
    figure.legend(handles=born + accuracy, loc="outside lower center", ncols=2, fontsize=8)
    born_axis.set_title("Best individual per generation: when it was born, how accurate (paper Fig. 4)",
                        fontsize=10)
    return _png(figure)


def draw_search_curve(data: dict) -> bytes:
    figure = Figure(figsize=(7, 4.4), layout="constrained")
    axis = figure.add_subplot()
    axis.plot(data["step"], data["best_accuracy"], color=ACCURACY_COLOUR, marker="o", markersize=4,
              label="best of the generation")
    if all(value is not None for value in data["mean_accuracy"]):
        axis.plot(data["step"], data["mean_accuracy"], color=MEAN_COLOUR, marker="^", markersize=4,
                  linestyle="--", label="mean of the population")
    _generation_axis(axis, data)
    axis.set_ylabel("accuracy on the mini test set")
    axis.set_title("Search progress: mini-set accuracy per generation", fontsize=10)
    axis.legend(fontsize=8)
    return _png(figure)


def draw_mini_vs_full(data: dict) -> bytes:
    figure = Figure(figsize=(5, 4.5), layout="constrained")
    axis = figure.add_subplot()
    axis.scatter(data["mini_accuracy"], data["test_accuracy"])
    for index, x, y in zip(data["index"], data["mini_accuracy"], data["test_accuracy"]):
        axis.annotate(str(index), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=8)
    tau = data.get("kendall_tau")
    text = (f"Kendall's τ = {tau:.2f} over {len(data['index'])} genomes" if tau is not None
            else "Kendall's τ undefined (fewer than 2 genomes, or ties only)")
    axis.text(0.02, 0.98, text, transform=axis.transAxes, va="top", fontsize=9,
              bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8})
    axis.set_xlabel("mini-set test accuracy (search)")
    axis.set_ylabel("full test accuracy (retrain)")
    axis.xaxis.set_major_locator(MaxNLocator(5))
    axis.margins(0.15)  # room for the labels and the tau box at the edges
    axis.set_title("Mini-set accuracy against full accuracy (points: genome index)", fontsize=10)
    return _png(figure)


def draw_curves(data: dict[int, dict]) -> bytes:
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axis = figure.add_subplot()
    for index, curve in data.items():
        line, = axis.plot(curve["epoch"], curve["test_accuracy"], marker="o", markersize=3, label=f"genome {index}")
        if curve["seeds"] > 1:
            axis.fill_between(curve["epoch"], curve["low"], curve["high"], color=line.get_color(), alpha=0.2)

    axis.set_xlabel("epoch")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel("test accuracy")
    seeds = max((curve["seeds"] for curve in data.values()), default=1)
    axis.set_title("Retraining on the full training set" + (
        f" (mean of {seeds} seeds; band: lowest to highest)" if seeds > 1 else ""))
    if data:
        axis.legend(fontsize=8, ncol=2)
    return _png(figure)
