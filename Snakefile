# MiniGen, end to end: download -> sample -> search -> collect -> retrain -> report.
#
#   snakemake --cores 1 --resources gpu=1      # the paper's pipeline on one GPU
#
# Every setting comes from params.yaml; each rule re-runs when the settings it reads
# change. dvc.yaml runs the same stages with the same commands, inputs, outputs and
# params (tests/test_pipeline_sync.py keeps the two in step).
from snakemake.utils import min_version

min_version("8.0")


configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/retrain.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        rules.report.output,
    default_target: True
