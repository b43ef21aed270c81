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


# `snakemake --report report.html`: this text, the files marked with report(...), and
# each job's runtime from its `benchmark:` file.
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/retrain.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/study.smk"  # `snakemake study`: the study, not part of `all`


rule all:
    input:
        rules.report.output,
        runtimes(),


    default_target: True

