# The study (README "The study"): `snakemake study`. Each arm x seed of params.yaml's
# `study` section searches the mini set, then its best genome is retrained on the full
# data; one report compares the arms. study/dvc.yaml runs the same jobs with the same
# commands (tests/test_study_workflows.py keeps the two in step). Every other arm's search
# of a seed starts after the reference's (a random arm evaluates as many networks).

include: "study_common.smk"


rule study_reference:
    input:
        code=study_code("study_reference"),
        mini="data/mini",
    output:
        search=directory(f"{STUDY_ARMS}/{STUDY_REFERENCE}/seed_{{seed}}/search"),
        genomes=directory(f"{STUDY_ARMS}/{STUDY_REFERENCE}/seed_{{seed}}/genomes"),
    params:
        settings=study_settings("study_reference"),
        file=params_file,
    log:
        f"logs/study/{STUDY_REFERENCE}/seed_{{seed}}/search.log",
    benchmark:
        f"benchmarks/study/{STUDY_REFERENCE}/seed_{{seed}}/search.tsv"
    wildcard_constraints:
        seed=r"\d+",
    threads: PARAMS["search"]["workers"]
    resources:
        gpu=1,
        runtime=study_runtime("search"),
        mem_mb=mem_mb("search"),
        cpus_per_task=cpus,
    shell:
        f"CUBLAS_WORKSPACE_CONFIG=:16:8 minigen study search {STUDY_REFERENCE} {{wildcards.seed}}"
        f" --params {{params.file}} --mini {{input.mini}} --out {STUDY_ARMS} 2>&1 | tee {{log}}"


rule study_search:
    input:
        code=study_code("study_search"),
        mini="data/mini",
        reference=f"{STUDY_ARMS}/{STUDY_REFERENCE}/seed_{{seed}}/search",
    output:
        search=directory(f"{STUDY_ARMS}/{{arm}}/seed_{{seed}}/search"),
        genomes=directory(f"{STUDY_ARMS}/{{arm}}/seed_{{seed}}/genomes"),
    params:
        settings=study_settings("study_search"),
        file=params_file,
    log:
        "logs/study/{arm}/seed_{seed}/search.log",
    benchmark:
        "benchmarks/study/{arm}/seed_{seed}/search.tsv"
    wildcard_constraints:
        arm="|".join(study_compared()) or "(?!)",
        seed=r"\d+",
    threads: PARAMS["search"]["workers"]
    resources:
        gpu=1,
        runtime=study_runtime("search"),
        mem_mb=mem_mb("search"),
        cpus_per_task=cpus,
    shell:
        f"CUBLAS_WORKSPACE_CONFIG=:16:8 minigen study search {{wildcards.arm}} {{wildcards.seed}}"
        f" --params {{params.file}} --mini {{input.mini}} --out {STUDY_ARMS} 2>&1 | tee {{log}}"


rule study_retrain:
    input:
        code=study_code("study_retrain"),
        genomes=f"{STUDY_ARMS}/{{arm}}/seed_{{seed}}/genomes",
        raw="data/raw",
        mini="data/mini",
    output:
        retrain=directory(f"{STUDY_ARMS}/{{arm}}/seed_{{seed}}/retrain/genome_0"),
    params:
        settings=study_settings("study_retrain"),
        file=params_file,
    log:
        "logs/study/{arm}/seed_{seed}/retrain.log",
    benchmark:
        "benchmarks/study/{arm}/seed_{seed}/retrain.tsv"
    wildcard_constraints:
        arm="|".join(PARAMS["study"]["arms"]),
        seed=r"\d+",
    # One thread, as the pipeline's retrain: on the CPU, N retrains share N cores.
    threads: 1
    resources:
        gpu=1,
        runtime=study_runtime("retrain"),
        mem_mb=mem_mb("retrain"),
        cpus_per_task=cpus,
    shell:
        f"CUBLAS_WORKSPACE_CONFIG=:16:8 minigen study retrain {{wildcards.arm}} {{wildcards.seed}}"
        f" --params {{params.file}} --raw {{input.raw}} --mini {{input.mini}} --out {STUDY_ARMS} 2>&1 | tee {{log}}"


rule study_report:
    input:
        code=study_code("study_report"),
        runs=expand(f"{STUDY_ARMS}/{{arm}}/seed_{{seed}}/{{folder}}", arm=PARAMS["study"]["arms"],
                    seed=PARAMS["study"]["seeds"], folder=("search", "genomes", "retrain/genome_0")),
    output:
        report=directory("results/study/report"),
    params:
        settings=study_settings("study_report"),
        file=params_file,
    log:
        "logs/study/report.log",
    benchmark:
        "benchmarks/study/report.tsv"
    threads: 1
    resources:
        runtime=runtime("report"),
        mem_mb=mem_mb("report"),
        cpus_per_task=cpus,
    shell:
        f"minigen study report --params {{params.file}} --arms {STUDY_ARMS} --out {{output.report}} 2>&1 | tee {{log}}"


rule study:
    input:
        rules.study_report.output,
