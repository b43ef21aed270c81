# Helpers shared by the rules.


def settings(*names):
    """The params.yaml values a rule reads, by dotted name ("search.p_op", "seed").

    Held in a rule's `params:`, so Snakemake re-runs the rule when one of them changes;
    dvc.yaml lists the same names under the stage's `params:`.
    """
    chosen = {}
    for name in names:
        value = config
        for key in name.split("."):
            value = value[key]
        chosen[name] = value
    return chosen


def collected():
    """Indices of the genomes `collect` writes and `retrain` trains: 0 .. collect.top_k - 1."""
    return range(config["collect"]["top_k"])


# Every command ends in `2>&1 | tee {log}`: its output goes to the rule's log and to the
# terminal. Training rules start with CUBLAS_WORKSPACE_CONFIG=:16:8, which deterministic
# algorithms need on CUDA. dvc.yaml's `cmd`s are the same commands without the `| tee`.
