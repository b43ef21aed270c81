"""The pipeline's stages and what each one's result depends on: settings and code.

One table serves every engine and key: `dvc.yaml` lists these params and code paths
under each stage, the Snakemake rules read them from here (tests/test_pipeline_sync.py
keeps dvc.yaml equal), and the cache and checkpoint keys fingerprint the same code
(`store.code_version`). So editing the training loop re-runs the search and the
retrains, editing the report code re-runs only the report, and changing a setting that
only decides speed (`search.workers`, the devices) re-runs nothing.
"""

from __future__ import annotations

from minigen import settings

STAGES = ("download", "sample", "search", "collect", "retrain", "report")

# What one evaluation of a genome computes: the genome's network, the loop, the device
# set-up, the mini set's reader and the evaluator that runs them.
EVALUATION_CODE = (
    "minigen/space/genome.py",
    "minigen/model",
    "minigen/training/loop.py",
    "minigen/training/device.py",
    "minigen/training/evaluator.py",
    "minigen/data/mini.py",
)

# Per stage, the modules whose edit changes its outputs. Code that only moves bytes
# (store/, the CLI, settings) is left out: editing it changes no result.
STAGE_CODE: dict[str, tuple[str, ...]] = {
    "download": ("minigen/stages/download.py", "minigen/data"),
    "sample": ("minigen/stages/sample.py", "minigen/data"),
    "search": ("minigen/stages/search.py", "minigen/space", *EVALUATION_CODE[1:]),
    "collect": ("minigen/stages/collect.py",),
    "retrain": ("minigen/stages/retrain.py", *EVALUATION_CODE[:4], "minigen/data"),
    "report": ("minigen/stages/report.py", "minigen/reporting"),
}


def _keyed(section: str, model: type, unkeyed: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{section}.{name}" for name in model.model_fields if name not in unkeyed)


# Per stage, the settings that decide its result (dotted names, as `dvc exp run -S` takes).
# What data, not where from: data.url and data.archive only say where to fetch the
# archive whose md5 is data.archive_md5, so moving the archive re-runs nothing.
STAGE_PARAMS: dict[str, tuple[str, ...]] = {
    "download": ("data.dataset", "data.archive_md5"),
    "sample": ("seed", "data.dataset", "data.train_per_class", "data.test_per_class"),
    "search": ("seed", "space", *_keyed("search", settings.Search, settings.UNKEYED_SEARCH_SETTINGS)),
    "collect": ("collect.top_k",),
    # A retrain job's seed is in its command (`minigen retrain INDEX SEED`), as its index: adding
    # a seed to retrain.seeds runs the new jobs and re-runs none of the others.
    "retrain": _keyed("retrain", settings.Retrain, ("device", "seeds")),
    "report": ("collect.top_k", "retrain.seeds"),
}

# The study (study/dvc.yaml, workflow/rules/study.smk): per arm and seed a search, then a
# retrain of its best genome; then one report over all. The reference arm's searches are
# their own stage because every other arm's search of a seed waits for the reference's
# (a random arm matches its budget). "{arm}" is the job's arm (dvc.yaml: ${item.arm}).
STUDY_STAGES = ("study_reference", "study_search", "study_retrain", "study_report")
STUDY_CODE: dict[str, tuple[str, ...]] = {
    "study_reference": ("minigen/stages/study.py", *STAGE_CODE["search"]),
    "study_search": ("minigen/stages/study.py", *STAGE_CODE["search"]),
    "study_retrain": ("minigen/stages/study.py", *STAGE_CODE["retrain"]),
    "study_report": ("minigen/stages/study_report.py", "minigen/stages/report.py", "minigen/reporting",
                     "minigen/space/evolution.py", "minigen/space/records.py"),
}
_STUDY_SEARCH = ("space", *_keyed("search", settings.Search, settings.UNKEYED_SEARCH_SETTINGS), "study.reference")
STUDY_PARAMS: dict[str, tuple[str, ...]] = {
    "study_reference": (*_STUDY_SEARCH, "study.arms.{arm}"),
    "study_search": (*_STUDY_SEARCH, "study.arms.{arm}"),
    "study_retrain": (*_keyed("retrain", settings.Retrain, ("device", "epochs", "seeds")), "study.retrain_epochs",
                      "study.arms.{arm}"),
    "study_report": ("study.reference", "study.compared", "study.seeds"),
}
