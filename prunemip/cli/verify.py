"""``prunemip verify``: decide a VNN-LIB property (sat, unsat, timeout, unknown), one or a batch.

One ``NETWORK PROPERTY`` pair prints its verdict as the last line; ``--instances CSV``
decides every line of a VNN-COMP instances file (``onnx,vnnlib,timeout``, paths relative
to the file) and prints one CSV line per instance. In a batch, an instance whose files
cannot be read or do not fit each other gets the verdict ``error`` with its reason, and the
batch goes on; only an instances file that is itself bad stops it, before the first instance.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from prunemip.cli.arguments import (
    add_bounds_argument,
    add_device_argument,
    add_trust_pickle,
    examples,
    output_file,
    positive_float,
)
from prunemip.errors import PrunemipError
from prunemip.text_io import read_text

if TYPE_CHECKING:
    from prunemip.engine.progress import ProgressHook
    from prunemip.engine.verify import VerifyResult


#: The columns of ``--results``: the instance, its verdict (or ``error``), seconds, and why it is an error.
RESULT_COLUMNS = ("onnx", "vnnlib", "verdict", "seconds", "reason")


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
            "disjunct proved by bounds or the MIP), timeout or unknown. Exit status 0 for every verdict.\n\n"
            "--instances decides every line of a VNN-COMP instances CSV (onnx,vnnlib,timeout; paths\n"
            "relative to it). A line whose files are missing, unreadable or of different sizes gets the\n"
            "verdict error with its reason, and the batch goes on (exit status 0). Only a bad instances\n"
            "file (unreadable, no lines, a line without three fields, a timeout that is not a positive\n"
            "number) stops the batch before it starts, with exit status 2 and no results file.\n"
            f"--results columns: {','.join(RESULT_COLUMNS)} (reason: why a line is an error).\n\n"
            "On a terminal a live line per disjunct shows the stage, elapsed time, best slack found and\n"
            "best proven bound. Ctrl-C stops the search: the verdict so far is printed and written (a\n"
            "batch stops after that instance, its reason 'interrupted'), exit status 130; a second\n"
            "Ctrl-C aborts at once."
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
    verify.add_argument(
        "--results",
        help=f"batch mode: also write one CSV line per instance here ({','.join(RESULT_COLUMNS)})",
    )
    verify.add_argument("--seed", type=int, default=0, help="seed of the random falsification and HiGHS (0)")
    add_bounds_argument(verify, "neuron bounds over each input box, as for attack")
    add_device_argument(verify)
    add_trust_pickle(verify)


def run(args: argparse.Namespace, console: Console) -> None:
    """Decide one property, or every instance of ``--instances``.

    Args:
        args: the parsed command line.
        console: where progress and the batch lines go; a single verdict is printed to stdout.
    """
    from prunemip.atomic import atomic_write_lines
    from prunemip.cli.live import raise_if_interrupted, searching
    from prunemip.vnnlib import counterexample_text

    if args.instances:
        if args.network or args.property:
            raise PrunemipError("give either NETWORK PROPERTY or --instances, not both")
        _run_batch(args, console)
        return
    if not (args.network and args.property):
        raise PrunemipError("give a network and a property file (or --instances CSV)")
    counterexample = output_file(args.counterexample, "--counterexample")
    with searching(console) as progress:
        result = _verify_one(args.network, args.property, args.timeout, args, progress)
    console.print(f"{result.stage}: {', '.join(result.disjuncts) or '-'} in {result.seconds:.2f} s")
    if counterexample is not None:
        sat = result.verdict == "sat"
        text = counterexample_text(result.x, result.outputs) if sat else result.verdict + "\n"
        atomic_write_lines(counterexample, text.rstrip("\n").splitlines())
    print(result.verdict)
    raise_if_interrupted(result.interrupted, console)


def _verify_one(
    network_path: str,
    property_path: str,
    timeout: float,
    args: argparse.Namespace,
    progress: ProgressHook | None,
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
        device=args.device,
        progress=progress,
    )
    return verify(network, prop, timeout, options)


@dataclass(frozen=True)
class _Instance:
    """One line of an instances CSV: the network and property as written, and the seconds allowed."""

    network: str
    prop: str
    timeout: float


def _instances(listing: Path) -> list[_Instance]:
    """The instances of a CSV, every line checked before any runs.

    Raises:
        PrunemipError: when the file cannot be read, lists no instance, or has a line that is not
            ``onnx,vnnlib,timeout`` with a positive timeout.
    """
    text = read_text(listing, "instances file")
    instances = []
    reader = csv.reader(text.splitlines())
    try:
        for row in reader:
            if not row or not row[0].strip():
                continue
            where = f"{listing.name}:{reader.line_num}"
            if len(row) != 3:
                raise PrunemipError(f"{where}: expected onnx,vnnlib,timeout, got {len(row)} fields")
            network, prop, timeout = (field.strip() for field in row)
            try:
                seconds = float(timeout)
            except ValueError:
                seconds = math.nan
            if not (math.isfinite(seconds) and seconds > 0):
                raise PrunemipError(f"{where}: timeout {timeout!r} is not a positive number of seconds")
            instances.append(_Instance(network, prop, seconds))
    except csv.Error as error:
        raise PrunemipError(f"{listing.name}:{reader.line_num}: not a CSV line ({error})") from None
    if not instances:
        raise PrunemipError(f"instances file {listing} lists no instances (onnx,vnnlib,timeout lines)")
    return instances


def _csv_line(fields: list[str]) -> str:
    """``fields`` as one CSV line, quoted where a field needs it."""
    line = io.StringIO()
    csv.writer(line, lineterminator="").writerow(fields)
    return line.getvalue()


def _run_batch(args: argparse.Namespace, console: Console) -> None:
    """Decide every instance of ``--instances`` in order; print a line each and a count per verdict.

    An instance that raises :class:`PrunemipError` (a file missing or unreadable, sizes that
    differ) gets the verdict ``error`` with the message as its reason; the others go on.
    """
    from prunemip.atomic import atomic_write_lines
    from prunemip.cli.live import raise_if_interrupted, searching

    listing = Path(args.instances)
    instances = _instances(listing)
    results = output_file(args.results, "--results")
    lines, counts, total = [], {}, 0.0
    interrupted = False
    for instance in instances:
        started = time.perf_counter()
        paths = (str(listing.parent / instance.network), str(listing.parent / instance.prop))
        try:
            with searching(console) as progress:
                result = _verify_one(*paths, instance.timeout, args, progress)
            interrupted = result.interrupted
            verdict, seconds = result.verdict, result.seconds
            reason = "interrupted" if interrupted else ""
        except PrunemipError as error:
            verdict, seconds, reason = "error", time.perf_counter() - started, str(error)
        fields = [instance.network, instance.prop, verdict, f"{seconds:.3f}"]
        console.print(_csv_line(fields) + (f"  ({reason})" if reason else ""), markup=False)
        lines.append(_csv_line([*fields, reason]))
        counts[verdict] = counts.get(verdict, 0) + 1
        total += seconds
        if interrupted:  # the instances after it are not run
            break
    summary = ", ".join(f"{verdict} {count}" for verdict, count in sorted(counts.items()))
    ran = f"{len(lines)} of {len(instances)}" if interrupted else str(len(instances))
    console.print(f"{ran} instances: {summary}; {total:.1f} s in all")
    if results is not None:
        atomic_write_lines(results, [",".join(RESULT_COLUMNS), *lines])
    raise_if_interrupted(interrupted, console)
