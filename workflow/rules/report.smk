# The paper's table and figures, and the summary metrics `dvc exp show` compares.


rule report:
    input:
        search="results/search",
        genomes=expand("results/genomes/genome_{i}.json", i=collected()),
        retrain=expand("results/retrain/genome_{i}", i=collected()),
    output:
        report=directory("results/report"),
    params:
        settings=settings("collect.top_k"),
    log:
        "logs/report.log",
    threads: 1
    shell:
        "minigen report --params params.yaml --search {input.search} --genomes results/genomes"
        " --retrain results/retrain --out {output.report} 2>&1 | tee {log}"
