"""Training: device set-up, the one training loop, the evaluator and its worker pool, benchmarks."""
