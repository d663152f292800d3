"""``prunemip info``: a network's layers, sparsity and input range."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from prunemip.cli.arguments import add_trust_pickle, examples


def add_parser(commands: Any, formatter: Any) -> None:
    """Register ``info`` and its flags.

    Args:
        commands: the ``add_subparsers`` object of the ``prunemip`` parser.
        formatter: the help formatter class.
    """
    info = commands.add_parser(
        "info",
        formatter_class=formatter,
        help="show a network's layers, sparsity and input range",
        epilog=examples("prunemip info model.onnx"),
    )
    info.add_argument("model", help="network file (.pt, .onnx, .npz)")
    add_trust_pickle(info)


def run(args: argparse.Namespace, console: Console) -> None:
    """Print the layer table, the input shape and range, and the metadata keys.

    Args:
        args: the parsed command line.
        console: where the table goes.
    """
    from prunemip.cli.tables import network_table
    from prunemip.model_io import load_network
    from prunemip.onnx_io import ROUNDED_KEY

    network = load_network(args.model, trust_pickle=args.trust_pickle)
    console.print(network_table(network))
    spec = network.input_spec
    bounded = (
        f"[{spec.lower.min():g}, {spec.upper.max():g}]"
        if spec.is_bounded
        else "unbounded (give --input-range)"
    )
    console.print(f"input shape {spec.shape}, range {bounded}, normalisation folded in: {spec.normalization}")
    if network.metadata:
        console.print(f"metadata keys: {', '.join(sorted(network.metadata))}")
    if network.metadata.get(ROUNDED_KEY):
        console.print(
            f"weights rounded to {network.metadata[ROUNDED_KEY]} on export: a different function from the "
            "network it was exported from"
        )
