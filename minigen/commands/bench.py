"""`minigen bench eval`: time one evaluation on random data (see BENCHMARKS.md)."""

from __future__ import annotations

import argparse
import json

from minigen import settings as P
from minigen.errors import UserError
from minigen.commands import add_action_group


def register(sub) -> None:
    actions = add_action_group(sub, "bench", "speed benchmarks", "Speed benchmarks (see BENCHMARKS.md).")
    ev = actions.add_parser(
        "eval",
        help="time one genome evaluation on random data",
        description="Train a genome on N random 32x32 images (10 balanced classes, seeded) for E "
        "epochs with the search's training loop, score it on the test images, and print the "
        "seconds, images per second (N*E/seconds) and achieved GFLOP/s (forward FLOPs x3 x N x E "
        "/ seconds). A one-step warm-up of the same genome runs first and is reported apart.",
    )
    ev.add_argument("--genome", required=True, metavar="FILE", help="genome JSON (authors' format)")
    ev.add_argument("--train-images", type=int, required=True, metavar="N", help="training images")
    ev.add_argument("--epochs", type=int, required=True, metavar="E", help="training epochs")
    ev.add_argument("--device", default="auto", metavar="D", help="auto, cpu, cuda or cuda:N (default: auto)")
    ev.add_argument("--precision", default=P.PAPER.search.precision, choices=P.PRECISIONS,
                    help="fp32 (default, the paper), bf16 autocast, or tf32 matmuls (GPU)")
    ev.add_argument("--batch-size", type=int, default=P.PAPER.search.batch_size, metavar="B",
                    help="batch size (default: %(default)s)")
    ev.add_argument("--test-images", type=int, default=100, metavar="M", help="test images (default: 100)")
    ev.add_argument("--seed", type=int, default=P.PAPER.seed, help="seed for data and weights (default: %(default)s)")
    ev.add_argument("--threads", type=int, default=None, metavar="T", help="CPU threads (default: torch's choice)")
    ev.add_argument("--no-warmup", dest="warmup", action="store_false",
                    help="skip the warm-up step, so seconds include one-off start-up costs")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    for name in ("train_images", "epochs", "batch_size", "test_images"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be a positive integer, got {args.threads}")

    import torch

    from minigen.training import benchmark as bench
    from minigen.training import device as D
    from minigen.space import genome as G
    from minigen.training.loop import TrainingFailed

    genome = G.load(args.genome)
    device = D.resolve(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        result = bench.evaluate(
            genome, train_images=args.train_images, epochs=args.epochs, device=device,
            precision=args.precision, batch_size=args.batch_size, test_images=args.test_images,
            seed=args.seed, warmup=args.warmup,
        )
    except TrainingFailed as exc:
        raise UserError(f"training failed: {exc}") from None
    print(json.dumps(result) if args.json else bench.format_result(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m minigen.commands.bench eval ...`: the same command on torch alone (bench/gpu.sh
    falls back to it on a bare GPU machine without the pipeline's other dependencies)."""
    from minigen.cli import dispatch  # imports no command module but this one

    parser = argparse.ArgumentParser(prog="minigen")
    register(parser.add_subparsers(dest="command", required=True))
    return dispatch(parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
