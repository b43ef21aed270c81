"""Store: atomic writes, the evaluation cache, cache paths, and the file formats stages hand each other. No torch."""
