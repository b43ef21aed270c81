"""minigen: a reproducibility pipeline for the MiniGen evolutionary architecture search."""

__version__ = "0.1.0"
