"""`minigen report`: Table III's columns and order, paper columns, Kendall's tau, figure data."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from archives import write_params

from minigen import settings as P
from minigen.store import formats, provenance
from minigen.reporting import checklist, figures
from minigen.reporting import paper_facts
from minigen.space import complexity
from minigen.space import genome as G
from minigen.stages import report as Rep
from minigen.errors import UserError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SMALL = [
    [".", 1, ["3*3 conv", "3*3 conv"]],
    [8, 1, ["3*3 conv", "3*3 maxpool"]],
    [8, 1, ["identity", "3*3 conv"]],
    [16, 1, ["3*3 conv", "3*3 avgpool"]],
    [16, 1, ["3*3 dconv", "3*3 avgpool"]],
]
GENERATIONS = [  # two rounds of the search, as search.py writes them
    {"round": 0, "generation": 0, "best_accuracy": 0.30, "best_fitness": 0.30, "best_born": 0},
    {"round": 0, "generation": 1, "best_accuracy": 0.34, "best_fitness": 0.34, "best_born": 1},
    {"round": 0, "generation": 2, "best_accuracy": 0.34, "best_fitness": 0.33, "best_born": 1},
    {"round": 1, "generation": 0, "best_accuracy": 0.41, "best_fitness": 0.41, "best_born": 0},
    {"round": 1, "generation": 1, "best_accuracy": 0.45, "best_fitness": 0.45, "best_born": 1},
]


SEED = P.PAPER.seed
UNSEEN_GAP = 0.01  # write_run's accuracy on the unseen test images: this much below the full test set's


def write_run(root: Path, genomes: list, mini: list, full: list, params: list[int], epochs: int = 3,
              seeds: tuple[int, ...] = (SEED,)) -> None:
    """A finished search + collect + retrain, written in each stage's format. `full` holds a
    test accuracy per genome, or a list of them, one per seed."""
    write_params(root, collect={"top_k": len(genomes)}, retrain={"seeds": list(seeds)})
    search = root / "results" / "search"
    search.mkdir(parents=True)
    with open(search / "generations.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*GENERATIONS[0], "mean_accuracy", "evaluated", "winners"])
        writer.writeheader()
        writer.writerows({**row, "mean_accuracy": 0.2, "evaluated": 15, "winners": 0} for row in GENERATIONS)
    for index, (genome, mini_acc, full_acc, count) in enumerate(zip(genomes, mini, full, params)):
        genome_id = G.genome_id(genome)
        folder = root / "results" / "genomes"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"genome_{index}.json").write_text(json.dumps(
            {"index": index, "genome": genome, "genome_id": genome_id, "source": "winner",
             "search": {"accuracy": mini_acc, "born": 1, "generation": 1, "round": 0}}))
        for seed, accuracy in zip(seeds, full_acc if isinstance(full_acc, list) else [full_acc]):
            out = formats.retrain_dir(root / "results" / "retrain", index, seed)
            out.mkdir(parents=True)
            (out / "metrics.json").write_text(json.dumps(
                {"index": index, "seed": seed, "genome_id": genome_id, "test_accuracy": accuracy,
                 "clean_test_accuracy": accuracy - UNSEEN_GAP, "clean_test_images": 9900, "params": count,
                 "flops": 10 * count, "epochs": epochs, "recipe": "paper", "seconds": 1.0, "test_images": 10000}))
            curve = [{"epoch": e + 1, "train_loss": 2.0 - e / 10, "train_accuracy": 0.1 * (e + 1),
                      "test_accuracy": accuracy * (e + 1) / epochs} for e in range(epochs)]
            (out / "curve.csv").write_text(formats.csv_text(curve, formats.CURVE_COLUMNS))
            (out / "model.safetensors").write_bytes(f"weights of genome {index} seed {seed}".encode())


@pytest.fixture
def run(tmp_path, published):
    """Genome 0 is the paper's index 1; the rest are small ones with distinct channels."""
    variants = [SMALL] + [[row[:] for row in SMALL] for _ in range(2)]
    variants[1][1] = [24, 1, ["3*3 conv", "3*3 maxpool"]]
    variants[2][1] = [40, 1, ["3*3 conv", "3*3 maxpool"]]
    genomes = [published[1]["genome"], *variants]
    write_run(tmp_path, genomes, mini=[0.45, 0.30, 0.40, 0.35], full=[0.75, 0.50, 0.70, 0.40],
              params=[450_000, 100_000, 2_000_000, 200_000])
    return tmp_path


def report_cli(cli, root: Path):
    return cli("report", "--params", root / "params.yaml", "--search", root / "results" / "search",
               "--genomes", root / "results" / "genomes", "--retrain", root / "results" / "retrain",
               "--out", root / "results" / "report", cwd=root)


def test_ratio_is_the_papers_formula():
    assert round(Rep.ratio(0.747, 900_000), 2) == 0.83  # Table III, index 1, on the paper's own count
    assert round(Rep.ratio(0.734, 2_400_000), 2) == 0.31  # index 0


# Published genome -> (true parameters, our ratio on them, on twice them, the paper's ratio),
# all at the paper's accuracy. The true counts are the authors' modules' (README).
PUBLISHED_RATIOS = {0: (1_166_778, 0.629, 0.315, 0.306), 1: (429_186, 1.741, 0.870, 0.830),
                    7: (444_264, 1.454, 0.727, 0.718), 8: (433_730, 1.651, 0.825, 0.796)}


def test_both_ratio_columns_of_the_published_genomes_with_their_true_counts():
    rows = []
    for entry in paper_facts.published():
        if entry["index"] not in PUBLISHED_RATIOS:
            continue
        count, ours, doubled, papers = PUBLISHED_RATIOS[entry["index"]]
        assert complexity.complexity(entry["genome"])["params"] == count
        accuracy = entry["paper_accuracy_percent"] / 100
        rows += Rep.table_rows([{"index": entry["index"], "genome_id": entry["genome_id"], "source": "winner",
                                 "test_accuracy": accuracy, "params": count, "flops": 0, "mini_accuracy": None,
                                 "seeds": 1, "test_accuracy_std": None, "clean_test_accuracy": None,
                                 "clean_test_accuracy_std": None}])
        row = rows[-1]
        assert (round(row["ratio_true_params"], 3), round(row["ratio_doubled_params"], 3)) == (ours, doubled)
        assert round(row["paper_ratio"], 3) == papers
    # Sorted by our ratio, the paper's top four keep its order but 7 and 8 swap.
    assert [r["index"] for r in sorted(rows, key=lambda r: -r["ratio_true_params"])] == [1, 8, 7, 0]


def test_published_genomes_are_found_by_content(published):
    for entry in published:
        reordered = [[None if i == 0 else c, b, al] for i, (c, b, al) in enumerate(entry["genome"])]
        found = paper_facts.by_genome_id(G.genome_id(reordered))  # another spelling of cell 0
        assert found["index"] == entry["index"]
    assert paper_facts.by_genome_id(G.genome_id(SMALL)) is None


def test_report_writes_the_table_figures_and_metrics(cli, run):
    proc = report_cli(cli, run)
    assert proc.returncode == 0, proc.stderr
    out = run / "results" / "report"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["table.md", "table.html", "table.csv", "mini_vs_full.csv", "metrics.json", "checklist.md", Rep.BEST_MODEL,
         *Rep.FIGURES])
    assert (out / Rep.BEST_MODEL).read_bytes() == b"weights of genome 0 seed 2809"  # the best test accuracy
    for name in Rep.FIGURES:
        assert (out / name).read_bytes().startswith(PNG_MAGIC)

    rows = list(csv.DictReader((out / "table.csv").open()))
    assert tuple(rows[0]) == Rep.TABLE_COLUMNS
    # ratios: 0 -> 0.75/0.45 = 1.67, 1 -> 5.0, 2 -> 0.35, 3 -> 2.0
    assert [int(r["index"]) for r in rows] == [1, 3, 0, 2]
    ratios = [float(r["ratio_true_params"]) for r in rows]
    assert [float(r["ratio_doubled_params"]) for r in rows] == [r / 2 for r in ratios]
    assert ratios == sorted(ratios, reverse=True) and ratios[0] == pytest.approx(5.0)
    by_index = {int(r["index"]): r for r in rows}
    assert by_index[0]["paper_index"] == "1"
    assert float(by_index[0]["paper_accuracy"]) == pytest.approx(0.747)
    assert float(by_index[0]["paper_params_millions"]) == 0.9
    assert float(by_index[0]["paper_ratio"]) == pytest.approx(0.83, abs=0.005)
    assert by_index[1]["paper_index"] == "" and by_index[1]["paper_accuracy"] == ""
    assert float(by_index[2]["mini_accuracy"]) == 0.40 and int(by_index[2]["params"]) == 2_000_000

    table = (out / "table.md").read_text().splitlines()
    body = [line for line in table if line.startswith("| ") and not line.startswith("| Index")]
    assert [line.split("|")[1].strip() for line in body] == ["1", "3", "0", "2"]
    paper_row = body[2].split("|")
    assert paper_row[2].strip() == "75.00%" and paper_row[3].strip() == "74.00%" and paper_row[4].strip() == "1"
    assert paper_row[11].strip() == "74.7%" and paper_row[12].strip() == "0.9M"
    assert float(by_index[0]["clean_test_accuracy"]) == pytest.approx(0.74) and by_index[0]["test_accuracy_std"] == ""

    page = (out / "table.html").read_text()
    assert page.count("<tr>") == 1 + 4 and "<td>75.00%</td>" in page and "Ratio (2x params)" in page
    pairs = list(csv.DictReader((out / "mini_vs_full.csv").open()))  # the data plot `dvc plots` draws
    assert [(int(p["index"]), float(p["mini_accuracy"]), float(p["test_accuracy"])) for p in pairs] == [
        (0, 0.45, 0.75), (1, 0.30, 0.50), (2, 0.40, 0.70), (3, 0.35, 0.40)]

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["genomes"] == 4 and metrics["best_index"] == 0 and metrics["best_params"] == 450_000

    assert metrics["best_test_accuracy"] == 0.75 and metrics["mean_test_accuracy"] == pytest.approx(0.5875)
    assert metrics["best_clean_test_accuracy"] == pytest.approx(0.74)
    assert metrics["mean_clean_test_accuracy"] == pytest.approx(0.5775) and metrics["retrain_seeds"] == 1
    # mini ranks 0 > 2 > 3 > 1, full ranks 0 > 2 > 1 > 3: 5 concordant, 1 discordant pair
    assert metrics["kendall_tau"] == pytest.approx(4 / 6) and metrics["kendall_genomes"] == 4


def test_kendall_tau_on_known_data():
    assert Rep.kendall([0.1, 0.2, 0.3], [0.5, 0.6, 0.7])["kendall_tau"] == pytest.approx(1.0)
    assert Rep.kendall([0.1, 0.2, 0.3], [0.7, 0.6, 0.5])["kendall_tau"] == pytest.approx(-1.0)
    assert Rep.kendall([1, 2, 3, 4], [1, 3, 2, 4])["kendall_tau"] == pytest.approx(4 / 6)
    one = Rep.kendall([0.3], [0.7])
    assert one["kendall_tau"] is None and "2 needed" in one["kendall_note"]
    flat = Rep.kendall([0.3, 0.3, 0.3], [0.5, 0.6, 0.7])
    assert flat["kendall_tau"] is None and "all equal" in flat["kendall_note"]


def test_a_single_genome_reports_a_null_tau_and_says_so(cli, tmp_path):
    write_run(tmp_path, [SMALL], mini=[0.4], full=[0.6], params=[50_000])
    proc = report_cli(cli, tmp_path)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "results" / "report" / "metrics.json").read_text())
    assert metrics["kendall_tau"] is None and "Kendall's tau is null" in proc.stderr


def test_fig4_data_follows_the_generations_in_order():
    shuffled = [GENERATIONS[i] for i in (3, 0, 4, 2, 1)]
    data = figures.fig4_data(shuffled)
    assert data["step"] == [0, 1, 2, 3, 4]
    assert data["round"] == [0, 0, 0, 1, 1] and data["generation"] == [0, 1, 2, 0, 1]
    assert data["best_born"] == [0, 1, 1, 0, 1]
    assert data["best_accuracy"] == [0.30, 0.34, 0.34, 0.41, 0.45]
    assert data["round_starts"] == [3]


def test_mini_vs_full_and_curve_data():
    entries = [
        {"index": 2, "mini_accuracy": 0.4, "test_accuracy": 0.7,
         "curves": [[{"epoch": 1, "test_accuracy": 0.5}, {"epoch": 2, "test_accuracy": 0.7}]]},
        {"index": 0, "mini_accuracy": None, "test_accuracy": 0.6, "curves": [[{"epoch": 1, "test_accuracy": 0.6}]]},
        {"index": 1, "mini_accuracy": 0.3, "test_accuracy": 0.5,
         "curves": [[{"epoch": 1, "test_accuracy": 0.4}], [{"epoch": 1, "test_accuracy": 0.6}]]},
    ]
    assert figures.mini_vs_full_data(entries) == {
        "index": [1, 2], "mini_accuracy": [0.3, 0.4], "test_accuracy": [0.5, 0.7]}
    curves = figures.curves_data(entries)
    assert list(curves) == [0, 1, 2]
    assert curves[2] == {"epoch": [1, 2], "test_accuracy": [0.5, 0.7], "low": [0.5, 0.7], "high": [0.5, 0.7],
                         "seeds": 1}
    assert curves[1] == {"epoch": [1], "test_accuracy": [0.5], "low": [0.4], "high": [0.6], "seeds": 2}


def test_report_reads_the_data_it_draws(run):
    entries = Rep.load_entries(4, [SEED], run / "results" / "genomes", run / "results" / "retrain")
    assert [e["mini_accuracy"] for e in entries] == [0.45, 0.30, 0.40, 0.35]
    assert figures.curves_data(entries)[3]["test_accuracy"] == pytest.approx([0.4 / 3, 0.8 / 3, 0.4])
    assert figures.fig4_data(Rep.read_generations(run / "results" / "search"))["best_born"] == [0, 1, 1, 0, 1]


def test_a_missing_retrain_folder_is_one_line_and_exit_2(cli, run):
    report_cli(cli, run)
    before = (run / "results" / "report" / "table.csv").read_bytes()
    for name in ("metrics.json", "curve.csv", "model.safetensors"):
        (run / "results" / "retrain" / "genome_2" / "seed_2809" / name).unlink()
    (run / "results" / "retrain" / "genome_2" / "seed_2809").rmdir()
    proc = report_cli(cli, run)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "minigen retrain 2 2809" in proc.stderr
    assert (run / "results" / "report" / "table.csv").read_bytes() == before


@pytest.mark.parametrize("damage, says", [
    (lambda folder: (folder / "metrics.json").write_text("{oops"), "not valid JSON"),
    (lambda folder: (folder / "metrics.json").write_text('{"test_accuracy": 0.5}'), "malformed"),
    (lambda folder: (folder / "curve.csv").write_text("epoch,loss\n1,2\n"), "malformed"),
    (lambda folder: (folder / "model.safetensors").unlink(), "incomplete"),
])
def test_a_malformed_retrain_folder_is_one_line(run, damage, says):
    damage(formats.retrain_dir(run / "results" / "retrain", 1, SEED))
    with pytest.raises(UserError, match=says):
        Rep.load_entries(4, [SEED], run / "results" / "genomes", run / "results" / "retrain")


def test_a_retrain_of_another_genome_is_refused(run):
    metrics_path = formats.retrain_dir(run / "results" / "retrain", 3, SEED) / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics_path.write_text(json.dumps({**metrics, "genome_id": "0123456789abcdef"}))
    with pytest.raises(UserError, match="minigen retrain 3"):
        Rep.load_entries(4, [SEED], run / "results" / "genomes", run / "results" / "retrain")


def test_the_checklist_answers_every_item_from_the_run(cli, run):
    (formats.retrain_dir(run / "results" / "retrain", 2, SEED) / "cost.json").write_text(json.dumps(
        {"seconds": 7200.0, "placement": {"device": "cuda:0", "cards": [{"index": 0, "name": "NVIDIA H200"}]}}))
    assert report_cli(cli, run).returncode == 0
    text = (run / "results" / "report" / "checklist.md").read_text()
    items = [line for line in text.splitlines() if re.match(r"^\d+\. \*\*", line)]
    assert len(items) == len(checklist.items(checklist.RunFacts(
        params=P.load(run / "params.yaml"), code={}, search={}, retrains=[])))
    code = provenance.code_version()
    assert code["git_commit"] and f"`{code['git_commit']}`" in text  # the commit of the code that ran
    assert "pipeline seed 2809" in text and "retrain seeds 2809" in text
    assert "NVIDIA H200" in text and "retrain 2.001 device-hours (7,203 s)" in text  # 7,200 s + 3 x 1 s
    assert "## Not met by this run" in text and "- Comparison to random search" in text


def test_two_retrain_seeds_give_a_mean_and_std_row(cli, tmp_path):
    variant = [row[:] for row in SMALL]
    variant[1] = [24, 1, ["3*3 conv", "3*3 maxpool"]]
    write_run(tmp_path, [SMALL, variant], mini=[0.40, 0.30], full=[[0.60, 0.64], [0.50, 0.50]],
              params=[50_000, 100_000], seeds=(7, 8))
    proc = report_cli(cli, tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "results" / "report"
    rows = {int(r["index"]): r for r in csv.DictReader((out / "table.csv").open())}
    assert rows[0]["seeds"] == "2" and float(rows[0]["test_accuracy"]) == pytest.approx(0.62)
    assert float(rows[0]["test_accuracy_std"]) == pytest.approx(0.04 / 2 ** 0.5)  # sample std of 0.60, 0.64
    assert float(rows[0]["clean_test_accuracy"]) == pytest.approx(0.61)
    assert float(rows[0]["ratio_true_params"]) == pytest.approx(0.62 / 0.05)  # the ratio of the mean
    assert float(rows[1]["test_accuracy_std"]) == 0.0
    table = (out / "table.md").read_text()
    assert "| 0 | 62.00% ± 2.83 | 61.00% ± 2.83 | 2 |" in table and "retrained with 2 seeds" in " ".join(table.split())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["retrain_seeds"] == 2 and metrics["best_index"] == 0 and metrics["best_seed"] == 7
    assert metrics["best_test_accuracy_std"] == pytest.approx(0.04 / 2 ** 0.5)
    assert (out / Rep.BEST_MODEL).read_bytes() == b"weights of genome 0 seed 7"  # the first seed's, not the luckiest
    # Kendall's tau on the means: mini ranks 0 > 1, the means too.
    assert metrics["kendall_tau"] == pytest.approx(1.0)
    checklist_text = (out / "checklist.md").read_text()
    assert "retrain seeds 7, 8" in checklist_text
