"""``prunemip demo``: a dense and a 90 %-sparse digits MLP, the same test images attacked on both."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from prunemip.cli.arguments import add_bounds_argument, examples, nonnegative_int, positive_float
from prunemip.regions import BALL_NORMS


def add_parser(commands: Any, formatter: Any) -> None:
    """Register ``demo`` and its flags.

    Args:
        commands: the ``add_subparsers`` object of the ``prunemip`` parser.
        formatter: the help formatter class.
    """
    demo = commands.add_parser(
        "demo",
        formatter_class=formatter,
        help="dense vs 90%%-sparse digits MLP, attacked with HiGHS",
        description=(
            "Train a small MLP on scikit-learn's 8x8 digits, prune a copy to 90% sparsity by global\n"
            "magnitude and fine-tune it, attack the same test images on both, compare."
        ),
        epilog=examples("prunemip demo", "prunemip demo --images 20 --eps 0.1 --save-dir runs/demo"),
    )
    demo.add_argument("--hidden", type=int, nargs="+", default=[100, 100], help="hidden widths (100 100)")
    demo.add_argument("--epochs", type=int, default=40, help="dense training epochs (40)")
    demo.add_argument("--finetune-epochs", type=int, default=20, help="fine-tuning epochs after pruning (20)")
    demo.add_argument(
        "--sparsity", type=float, default=0.9, help="fraction of hidden-layer weights pruned (0.9)"
    )
    demo.add_argument("--images", type=int, default=10, help="test images to attack (10)")
    demo.add_argument("--norm", choices=BALL_NORMS, default="linf", help="ball norm (linf)")
    demo.add_argument("--eps", type=float, default=0.05, help="ball radius (0.05)")
    demo.add_argument("--mode", choices=("decide", "optimize"), default="decide", help="MIP mode (decide)")
    demo.add_argument(
        "--time-limit",
        type=positive_float,
        default=600.0,
        help="seconds per attack, a backstop far above what the default attacks take (600)",
    )
    demo.add_argument(
        "--node-limit",
        type=nonnegative_int,
        default=500,
        help="branch-and-bound nodes per MIP; unlike a time limit, it stops HiGHS at the same point "
        "on any machine (500)",
    )
    demo.add_argument("--seed", type=int, default=0, help="seed of data split, training and HiGHS (0)")
    demo.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="training device (cpu)")
    add_bounds_argument(
        demo, "neuron bounds of the attacked MIPs", default="ia", why="the demo measures the MIP itself"
    )
    demo.add_argument(
        "--gradient-attack", action="store_true", help="run the quick gradient attack before each MIP"
    )
    demo.add_argument("--save-dir", help="also save both networks (.npz) and the table (.json) here")


def run(args: argparse.Namespace, console: Console) -> None:
    """Train, prune and attack as :func:`prunemip.study.demo.run_demo` does; print the comparison.

    Args:
        args: the parsed command line.
        console: where tables and progress go.
    """
    from prunemip.cli.outputs import write_json
    from prunemip.cli.tables import demo_table
    from prunemip.model_io import save_network
    from prunemip.study.demo import DemoConfig, run_demo

    config = DemoConfig(
        hidden=tuple(args.hidden),
        epochs=args.epochs,
        finetune_epochs=args.finetune_epochs,
        sparsity=args.sparsity,
        images=args.images,
        norm=args.norm,
        radius=args.eps,
        mode=args.mode,
        time_limit=args.time_limit,
        node_limit=args.node_limit,
        seed=args.seed,
        device=args.device,
        bounds=args.bounds,
        gradient_attack=args.gradient_attack,
    )
    save_dir = _existing_dir(args.save_dir)
    reports = run_demo(config, log=console.print)
    rows = [report.row() for report in reports]
    console.print(demo_table(rows))
    dense, sparse = rows
    if sparse["solve_s"] > 0 and dense["solve_s"] > 0:
        console.print(f"MIP solve time dense / pruned: {dense['solve_s'] / sparse['solve_s']:.1f}x")
    if save_dir is not None:
        for report, stem in zip(reports, ("dense", "sparse"), strict=True):
            save_network(report.network, save_dir / f"{stem}.npz")
        write_json(save_dir / "demo.json", {"config": vars(args), "rows": rows})
        console.print(f"saved dense.npz, sparse.npz and demo.json in {save_dir}")


def _existing_dir(path: str | None) -> Path | None:
    """The folder ``path``, created if missing; ``None`` when not given."""
    if path is None:
        return None
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
