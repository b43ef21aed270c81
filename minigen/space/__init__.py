"""Space: the genome encoding, mutation and crossover, and the search strategies (the paper's evolution). No torch."""
