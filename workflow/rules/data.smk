# CIFAR-10 (or the embedded digits), then the frozen, stratified mini set.


rule download:
    input:
        code=stage_code("download"),
    output:
        raw=directory("data/raw"),
    params:
        settings=stage_settings("download"),
        file=params_file,
    log:
        "logs/download.log",
    benchmark:
        "benchmarks/download.tsv"
    threads: 1
    resources:
        runtime=runtime("download"),
        mem_mb=mem_mb("download"),
        cpus_per_task=cpus,
    shell:
        "minigen download --params {params.file} --out {output.raw} 2>&1 | tee {log}"


rule sample:
    input:
        code=stage_code("sample"),
        raw="data/raw",
    output:
        mini=directory("data/mini"),
    params:
        settings=stage_settings("sample"),
        file=params_file,
    log:
        "logs/sample.log",
    benchmark:
        "benchmarks/sample.tsv"

    threads: 1
    resources:
        runtime=runtime("sample"),
        mem_mb=mem_mb("sample"),
        cpus_per_task=cpus,
    shell:
        "minigen sample --params {params.file} --raw {input.raw} --out {output.mini} 2>&1 | tee {log}"
