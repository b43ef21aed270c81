# Each collected genome, once per seed of retrain.seeds, trained on the full training set
# and tested on the full test set (and on the part of it the search never saw).


rule retrain:
    input:
        code=stage_code("retrain"),
        genome="results/genomes/genome_{i}.json",
        raw="data/raw",
        mini="data/mini",
    output:
        retrain=directory("results/retrain/genome_{i}/seed_{seed}"),
    params:
        settings=stage_settings("retrain"),
        file=params_file,
    log:
        "logs/retrain/genome_{i}/seed_{seed}.log",
    benchmark:
        "benchmarks/retrain/genome_{i}/seed_{seed}.tsv"

    wildcard_constraints:
        i=r"\d+",
        seed=r"\d+",
    # One thread (Snakemake sets OMP_NUM_THREADS): on the CPU, N retrains then share N
    # cores side by side, and a busy machine does not stall a job's threads on each other.
    threads: 1
    resources:
        gpu=1,
        runtime=runtime("retrain"),
        mem_mb=mem_mb("retrain"),
        cpus_per_task=cpus,
    shell:
        "CUBLAS_WORKSPACE_CONFIG=:16:8 minigen retrain {wildcards.i} {wildcards.seed} --params {params.file}"
        " --genomes results/genomes --raw {input.raw} --mini {input.mini} --out results/retrain 2>&1 | tee {log}"
