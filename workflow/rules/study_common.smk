# Helpers of the study's rules (study.smk), apart from them: snakemake --lint wants rules
# and functions in separate files.

STUDY_ARMS = "results/study/arms"
STUDY_REFERENCE = PARAMS["study"]["reference"]


def study_compared():
    return [arm for arm in PARAMS["study"]["arms"] if arm != STUDY_REFERENCE]


def study_code(stage):
    """The modules whose edit re-runs `stage` (minigen.pipeline.STUDY_CODE)."""
    files = code_version.module_files(pipeline.STUDY_CODE[stage], root=Path(workflow.basedir))
    return [os.path.relpath(file) for file in files]


def study_settings(stage):
    """The settings that decide a job of `stage` (minigen.pipeline.STUDY_PARAMS), its arm's own."""

    def chosen(wildcards):
        arm = wildcards.get("arm", STUDY_REFERENCE)
        return settings(*(name.format(arm=arm) for name in pipeline.STUDY_PARAMS[stage]))

    return chosen


def study_runtime(stage):
    """Time limit in minutes of an arm's search or retrain: its own settings' worst case."""

    def minutes(wildcards, input):
        if workflow.remote_exec:
            return 0  # inside a cluster job, whose limit is set (the estimate imports torch)
        from minigen.training import cost

        job = minigen_settings.as_dict(minigen_settings.arm_settings(minigen_settings.of(PARAMS),
                                                                     wildcards.get("arm", STUDY_REFERENCE)))
        if stage == "search":
            return cost.search_limit_minutes(job)
        return cost.retrain_limit_minutes(job, f"{input.genomes}/genome_0.json")

    return minutes
