"""``prunemip data download``: fetch MNIST or Fashion-MNIST into the local cache."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from prunemip.cli.arguments import examples


def add_parser(commands: Any, formatter: Any) -> None:
    """Register ``data`` and its flags.

    Args:
        commands: the ``add_subparsers`` object of the ``prunemip`` parser.
        formatter: the help formatter class.
    """
    data = commands.add_parser(
        "data",
        formatter_class=formatter,
        help="download a dataset into the local cache",
        epilog=examples("prunemip data download fashion-mnist"),
    )
    data.add_argument("action", choices=("download",), help="what to do")
    data.add_argument("name", choices=("mnist", "fashion-mnist"), help="dataset")
    data.add_argument("--dest", help="folder to download into (default: the user cache)")


def run(args: argparse.Namespace, console: Console) -> None:
    """Download the dataset (checksums verified) and say where it is.

    Args:
        args: the parsed command line.
        console: where the result goes.
    """
    from prunemip.data import download_dataset

    folder = download_dataset(args.name, args.dest)
    console.print(f"{args.name} is in {folder}")
