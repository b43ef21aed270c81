"""What each stage depends on (minigen.pipeline), and the code fingerprint in cache and
checkpoint keys: it follows the code, not its comments, without a version to bump."""

from __future__ import annotations

from pathlib import Path

import yaml

from minigen import pipeline, settings
from minigen.stages import retrain, search
from minigen.store import code_version
from minigen.training import evaluator

ROOT = Path(__file__).resolve().parents[1]

LOOP = '''
def step(x, lr):
    """One step."""
    return x - lr * x  # plain SGD
'''


def test_the_digest_ignores_comments_docstrings_and_layout():
    same = LOOP.replace("# plain SGD", "# a new comment").replace('"""One step."""', '"""Reworded."""')
    same = same.replace("x - lr * x", "x-lr*x")
    assert code_version.source_digest(same) == code_version.source_digest(LOOP)


def test_the_digest_changes_with_the_code():
    for changed in (LOOP.replace("x - lr", "x + lr"), LOOP.replace("lr)", "lr, momentum=0)"), LOOP + "\nX = 1\n"):
        assert code_version.source_digest(changed) != code_version.source_digest(LOOP)


def test_every_named_module_exists_and_stages_cover_the_pipeline():
    assert set(pipeline.STAGE_CODE) == set(pipeline.STAGE_PARAMS) == set(pipeline.STAGES)
    for paths in [*pipeline.STAGE_CODE.values(), pipeline.EVALUATION_CODE]:
        for path in paths:
            assert (ROOT / path).exists(), path
        assert code_version.module_files(paths)


def test_keys_fingerprint_the_code_they_run():
    assert evaluator.EVAL_CODE == code_version.fingerprint(pipeline.EVALUATION_CODE)
    retrain_identity = retrain.checkpoint_identity("g", retrain.T.Recipe(epochs=1, batch_size=8), "0" * 64, "cpu")
    assert retrain_identity["code"] == code_version.fingerprint(pipeline.STAGE_CODE["retrain"])
    # The training loop is behind every result: search, evaluation and retrain keys.
    for paths in (pipeline.EVALUATION_CODE, pipeline.STAGE_CODE["search"], pipeline.STAGE_CODE["retrain"]):
        assert ROOT / "minigen/training/loop.py" in code_version.module_files(paths)
    assert ROOT / "minigen/training/loop.py" not in code_version.module_files(pipeline.STAGE_CODE["report"])
    search_identity = search.checkpoint_identity(settings.as_dict(settings.PAPER), "cpu", "0" * 64)
    assert search_identity["code"] == code_version.fingerprint(pipeline.STAGE_CODE["search"])


def test_dvc_yaml_lists_exactly_the_pipelines_code_and_params():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name in pipeline.STAGES:
        stage = stages[name].get("do", stages[name])
        code = [dep for dep in stage["deps"] if dep.startswith("minigen/")]
        assert tuple(code) == pipeline.STAGE_CODE[name], name
        assert tuple(stage["params"]) == pipeline.STAGE_PARAMS[name], name


def test_speed_settings_decide_nothing():
    for name, params in pipeline.STAGE_PARAMS.items():
        assert not {"search.workers", "search.device", "retrain.device", "search"} & set(params), name
