"""Data: the on-disk dataset formats (CIFAR-10 python batches, the frozen Mini CIFAR10 set)."""
