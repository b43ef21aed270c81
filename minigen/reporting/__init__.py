"""Reporting: figures, and the paper's published results to compare against."""
