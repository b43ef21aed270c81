"""Stages: one module per pipeline stage (download, sample, search, collect, retrain, report), nothing else."""
