# The evolutionary search on the mini set, then the genomes it found.


rule search:
    input:
        mini="data/mini",
    output:
        search=directory("results/search"),
    params:
        settings=settings("seed", "space", "search"),
    log:
        "logs/search.log",
    # On the CPU the search runs search.workers processes of one thread each.
    threads: config["search"]["workers"]
    resources:
        gpu=1,
    shell:
        "CUBLAS_WORKSPACE_CONFIG=:16:8 minigen search --params params.yaml"
        " --mini {input.mini} --out {output.search} 2>&1 | tee {log}"


rule collect:
    input:
        search="results/search",
    output:
        genomes=expand("results/genomes/genome_{i}.json", i=collected()),
    params:
        settings=settings("collect.top_k"),
    log:
        "logs/collect.log",
    threads: 1
    shell:
        "minigen collect --params params.yaml --search {input.search} --out results/genomes 2>&1 | tee {log}"
