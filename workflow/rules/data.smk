# CIFAR-10 (or the embedded digits), then the frozen, stratified mini set.


# What data, not where from: data.url and data.archive only say where to fetch the
# archive whose md5 is data.archive_md5, so moving the archive re-runs nothing.
rule download:
    output:
        raw=directory("data/raw"),
    params:
        settings=settings("data.dataset", "data.archive_md5"),
    log:
        "logs/download.log",
    threads: 1
    shell:
        "minigen download --params params.yaml --out {output.raw} 2>&1 | tee {log}"


rule sample:
    input:
        raw="data/raw",
    output:
        mini=directory("data/mini"),
    params:
        settings=settings("seed", "data.dataset", "data.train_per_class", "data.test_per_class"),
    log:
        "logs/sample.log",
    threads: 1
    shell:
        "minigen sample --params params.yaml --raw {input.raw} --out {output.mini} 2>&1 | tee {log}"
