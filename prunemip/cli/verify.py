"""``prunemip verify``: decide a VNN-LIB property (sat, unsat, timeout, unknown), one or a batch.

One ``NETWORK PROPERTY`` pair prints its verdict as the last line; ``--instances CSV``
decides every line of a VNN-COMP instances file (``onnx,vnnlib,timeout``, paths relative
to the file) and prints one CSV line per instance.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from prunemip.cli.arguments import add_bounds_argument, add_trust_pickle, examples, positive_float
from prunemip.errors import PrunemipError

if TYPE_CHECKING:
    from prunemip.engine.verify import VerifyResult


def add_parser(commands: Any, formatter: Any) -> None:
    """Register ``verify`` and its flags.

    Args:
        commands: the ``add_subparsers`` object of the ``prunemip`` parser.
        formatter: the help formatter class.
    """
    verify = commands.add_parser(
        "verify",
        formatter_class=formatter,
        help="decide a VNN-LIB property: sat, unsat, timeout, unknown",
        description=(
            "Decide an ONNX network and a VNN-LIB property as VNN-COMP does. The last line printed is\n"
            "the verdict: sat (with a counterexample re-checked by a forward pass), unsat (every\n"
            "disjunct proved by bounds or the MIP), timeout or unknown. Exit status 0 for every verdict."
        ),
        epilog=examples(
            "prunemip verify net.onnx prop.vnnlib --timeout 120 --counterexample cex.txt",
            "prunemip verify net.onnx prop.vnnlib --surrogate-sparsity 0.8",
            "prunemip verify --instances instances.csv --results results.csv",
        ),
    )
    verify.add_argument("network", nargs="?", help="the network (.onnx, or any model prunemip reads)")
    verify.add_argument("property", nargs="?", help="the property (.vnnlib)")
    verify.add_argument("--timeout", type=positive_float, default=120.0, help="seconds per instance (120)")
    verify.add_argument("--counterexample", help="write the verdict, and for sat the witness, to this file")
    verify.add_argument(
        "--surrogate-sparsity",
        type=float,
        help="first search a magnitude-pruned copy (e.g. 0.8); never used for unsat",
    )
    verify.add_argument("--instances", help="VNN-COMP instances CSV (onnx,vnnlib,timeout per line)")
    verify.add_argument("--results", help="batch mode: also write one CSV line per instance here")
    verify.add_argument("--seed", type=int, default=0, help="seed of the random falsification and HiGHS (0)")
    add_bounds_argument(verify, "neuron bounds over each input box, as for attack")
    add_trust_pickle(verify)


def run(args: argparse.Namespace, console: Console) -> None:
    """Decide one property, or every instance of ``--instances``.

    Args:
        args: the parsed command line.
        console: where progress and the batch lines go; a single verdict is printed to stdout.
    """
    from prunemip.atomic import atomic_write_lines
    from prunemip.vnnlib import counterexample_text

    if args.instances:
        if args.network or args.property:
            raise PrunemipError("give either NETWORK PROPERTY or --instances, not both")
        _run_batch(args, console)
        return
    if not (args.network and args.property):
        raise PrunemipError("give a network and a property file (or --instances CSV)")
    result = _verify_one(args.network, args.property, args.timeout, args)
    console.print(f"{result.stage}: {', '.join(result.disjuncts) or '-'} in {result.seconds:.2f} s")
    if args.counterexample:
        sat = result.verdict == "sat"
        text = counterexample_text(result.x, result.outputs) if sat else result.verdict + "\n"
        atomic_write_lines(Path(args.counterexample), text.rstrip("\n").splitlines())
    print(result.verdict)


def _verify_one(
    network_path: str, property_path: str, timeout: float, args: argparse.Namespace
) -> VerifyResult:
    """Load a network and a property and decide it within ``timeout`` seconds."""
    from prunemip.engine.verify import VerifyOptions, verify
    from prunemip.model_io import load_network
    from prunemip.solvers.highs import HighsOptions
    from prunemip.vnnlib import load_vnnlib

    network = load_network(network_path, trust_pickle=args.trust_pickle)
    prop = load_vnnlib(property_path)
    options = VerifyOptions(
        bounds=args.bounds,
        surrogate_sparsity=args.surrogate_sparsity,
        highs=HighsOptions(threads=1, random_seed=args.seed),
        seed=args.seed,
    )
    return verify(network, prop, timeout, options)


def _instance_rows(listing: Path) -> list[list[str]]:
    """The non-blank lines of an instances CSV, each checked to hold three fields."""
    if not listing.is_file():
        raise PrunemipError(f"instances file {listing} does not exist")
    rows = [row for row in csv.reader(listing.read_text().splitlines()) if row and row[0].strip()]
    for number, row in enumerate(rows, start=1):
        if len(row) != 3:
            raise PrunemipError(
                f"{listing.name}:{number}: expected onnx,vnnlib,timeout, got {len(row)} fields"
            )
    return rows


def _run_batch(args: argparse.Namespace, console: Console) -> None:
    """Decide every instance of ``--instances`` in order; print a line each and a count per verdict."""
    from prunemip.atomic import atomic_write_lines

    listing = Path(args.instances)
    rows = _instance_rows(listing)
    lines, counts, total = [], {}, 0.0
    for number, (network, prop, timeout) in enumerate(rows, start=1):
        try:
            seconds_allowed = float(timeout)
        except ValueError:
            raise PrunemipError(f"{listing.name}:{number}: timeout {timeout!r} is not a number") from None
        paths = (str(listing.parent / network.strip()), str(listing.parent / prop.strip()))
        result = _verify_one(*paths, seconds_allowed, args)
        line = f"{network.strip()},{prop.strip()},{result.verdict},{result.seconds:.3f}"
        console.print(line)
        lines.append(line)
        counts[result.verdict] = counts.get(result.verdict, 0) + 1
        total += result.seconds
    summary = ", ".join(f"{verdict} {count}" for verdict, count in sorted(counts.items()))
    console.print(f"{len(rows)} instances: {summary}; {total:.1f} s in all")
    if args.results:
        atomic_write_lines(Path(args.results), ["onnx,vnnlib,verdict,seconds", *lines])
