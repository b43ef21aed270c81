# The paper's table and figures, and the summary metrics `dvc exp show` compares.


rule report:
    input:
        code=stage_code("report"),
        search="results/search",
        genomes=expand("results/genomes/genome_{i}.json", i=collected()),
        retrain=retrain_jobs("results/retrain/genome_{i}/seed_{seed}"),
    # Files, not the folder (dvc.yaml's output), so each one marked for `snakemake --report`
    # gets its own caption (workflow/report/).
    output:
        table=report("results/report/table.html", caption="../report/table.rst", category="Results"),
        markdown="results/report/table.md",
        csv="results/report/table.csv",
        metrics="results/report/metrics.json",
        model="results/report/best_model.safetensors",
        mini_vs_full_data="results/report/mini_vs_full.csv",
        search_curve=report("results/report/search_curve.png", caption="../report/search_curve.rst",
                            category="Results", subcategory="Search"),
        fig4=report("results/report/fig4_generations.png", caption="../report/fig4.rst",
                    category="Results", subcategory="Search"),
        mini_vs_full=report("results/report/mini_vs_full.png", caption="../report/mini_vs_full.rst",
                            category="Results", subcategory="Retrain"),
        curves=report("results/report/retrain_curves.png", caption="../report/retrain_curves.rst",
                      category="Results", subcategory="Retrain"),
    params:
        settings=stage_settings("report"),
        file=params_file,
    log:
        "logs/report.log",
    benchmark:
        "benchmarks/report.tsv"
    threads: 1
    resources:
        runtime=runtime("report"),
        mem_mb=mem_mb("report"),
        cpus_per_task=cpus,
    shell:
        "minigen report --params {params.file} --search {input.search} --genomes results/genomes"
        " --retrain results/retrain --out results/report 2>&1 | tee {log}"

