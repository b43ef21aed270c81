"""Model: the op registry, the network built from a genome, and minigen's own conv kernels."""
