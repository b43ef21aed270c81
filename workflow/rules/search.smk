# The evolutionary search on the mini set, then the genomes it found.


rule search:
    input:
        code=stage_code("search"),
        mini="data/mini",
    output:
        search=directory("results/search"),
    params:
        settings=stage_settings("search"),
        file=params_file,
    log:
        "logs/search.log",
    benchmark:
        "benchmarks/search.tsv"
    # On the CPU the search runs search.workers processes of one thread each.
    threads: PARAMS["search"]["workers"]
    resources:
        gpu=1,
        runtime=runtime("search"),
        mem_mb=mem_mb("search"),
        cpus_per_task=cpus,
    shell:
        "CUBLAS_WORKSPACE_CONFIG=:16:8 minigen search --params {params.file}"
        " --mini {input.mini} --out {output.search} 2>&1 | tee {log}"


rule collect:
    input:
        code=stage_code("collect"),
        search="results/search",
    output:
        genomes=expand("results/genomes/genome_{i}.json", i=collected()),
    params:
        settings=stage_settings("collect"),
        file=params_file,
    log:
        "logs/collect.log",
    benchmark:
        "benchmarks/collect.tsv"

    threads: 1
    resources:
        runtime=runtime("collect"),
        mem_mb=mem_mb("collect"),
        cpus_per_task=cpus,
    shell:
        "minigen collect --params {params.file} --search {input.search} --out results/genomes 2>&1 | tee {log}"
