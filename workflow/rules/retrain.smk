# Each collected genome, trained on the full training set and tested on the full test set.


rule retrain:
    input:
        code=stage_code("retrain"),
        genome="results/genomes/genome_{i}.json",
        raw="data/raw",
    output:
        retrain=directory("results/retrain/genome_{i}"),
    params:
        settings=stage_settings("retrain"),
        file=params_file,
    log:
        "logs/retrain/genome_{i}.log",
    benchmark:
        "benchmarks/retrain/genome_{i}.tsv"

    wildcard_constraints:
        i=r"\d+",
    # One thread (Snakemake sets OMP_NUM_THREADS): on the CPU, N retrains then share N
    # cores side by side, and a busy machine does not stall a job's threads on each other.
    threads: 1
    resources:
        gpu=1,
        runtime=runtime("retrain"),
        mem_mb=mem_mb("retrain"),
        cpus_per_task=cpus,
    shell:
        "CUBLAS_WORKSPACE_CONFIG=:16:8 minigen retrain {wildcards.i} --params {params.file}"
        " --genomes results/genomes --raw {input.raw} --out results/retrain 2>&1 | tee {log}"
