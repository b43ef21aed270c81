"""`minigen download | sample | verify`: the data stages and the mini-set check."""

from __future__ import annotations

import argparse

from minigen import settings as P
from minigen.commands import add_folder_option, add_params_option


def register(sub) -> None:
    download = sub.add_parser(
        "download",
        help="fetch CIFAR-10 (md5-checked) or write the embedded digits into data/raw",
        description="Stage 1. With data.dataset: cifar10, download data.url through torchvision "
        "(md5 checked against data.archive_md5), or, when data.archive is set, use that local "
        "cifar-10-python.tar.gz (same md5 check; the path is relative to the working directory). "
        "With data.dataset: digits, write scikit-learn's bundled 8x8 digits upscaled to 32x32 RGB "
        "(offline). Output: OUT/cifar-10-batches-py/ in CIFAR-10's python format and OUT/SOURCE.json. "
        "Does nothing when OUT already holds the same source intact; a failed download leaves OUT untouched.",
    )
    add_params_option(download)
    add_folder_option(download, "--out", "data/raw", "output folder")
    download.set_defaults(func=run_download)

    sample = sub.add_parser(
        "sample",
        help="draw the frozen, stratified mini set from data/raw into data/mini",
        description="Stage 2. Draw exactly data.train_per_class images of every class from the "
        "training split and data.test_per_class from the test split, with numpy's "
        "default_rng(seed), and freeze them as OUT/train.npz, OUT/test.npz (uint8, no pickles) "
        "and OUT/manifest.json (source indices in batch order, seed, classes, class counts, "
        "sha256 per file, source md5).",
    )
    add_params_option(sample)
    add_folder_option(sample, "--raw", "data/raw", "raw data from `download`")
    add_folder_option(sample, "--out", "data/mini", "output folder")
    sample.set_defaults(func=run_sample)

    verify = sub.add_parser(
        "verify",
        help="re-hash a frozen mini set against its manifest",
        description="Re-hash every file of a frozen mini set against the sha256 in its "
        "manifest.json, so a copy moved between machines can be trusted. Exit code 2 names "
        "the first file that differs.",
    )
    add_folder_option(verify, "dir", "data/mini", "mini-set folder")
    verify.set_defaults(func=run_verify)


def run_download(args: argparse.Namespace) -> int:
    from minigen.stages.download import download

    print(download(P.load(args.params), args.out))
    return 0


def run_sample(args: argparse.Namespace) -> int:
    from minigen.stages.sample import sample

    manifest = sample(P.load(args.params), args.raw, args.out)
    print(f"sampled {len(manifest['train_indices'])} train ({manifest['train_per_class']} per class) and "
          f"{len(manifest['test_indices'])} test ({manifest['test_per_class']} per class) images of "
          f"{manifest['dataset']} with seed {manifest['seed']} into {args.out}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from minigen.data import mini

    manifest = mini.check(args.dir, complete=True)
    print(f"OK {args.dir}: {len(manifest['train_indices'])} train and {len(manifest['test_indices'])} test "
          f"images, {len(manifest['classes'])} classes, {manifest['dataset']}, seed {manifest['seed']}")
    return 0
