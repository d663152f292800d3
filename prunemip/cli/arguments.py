"""What the ``prunemip`` commands share on their command lines.

The argparse parser with one-line errors, the help formatter, the ``> 0`` / ``>= 0``
number types, the example epilog, output files checked before any work, ``--bounds``
(choices and help read from the registry :mod:`prunemip.solvers.methods`), and the
argument groups of ``encode`` and ``attack`` (network, input point, perturbation,
encoding, HiGHS). Nothing here imports torch or HiGHS, so ``prunemip --help`` stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from prunemip.devices import DEVICES
from prunemip.errors import PrunemipError
from prunemip.regions import BALL_NORMS
from prunemip.solvers.methods import BOUNDS_CHOICES, DEFAULT_BOUNDS, METHODS

#: A parser or one of its argument groups (argparse names no public type for both).
Arguments = argparse._ActionsContainer

#: Exit status of a user mistake (bad flag, bad file): one ``prunemip: error: ...`` line on stderr.
USER_ERROR = 2


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message: str) -> NoReturn:
        """Print ``prunemip: error: MESSAGE (see PROG --help)`` and exit with :data:`USER_ERROR`.

        Args:
            message: argparse's description of the mistake.
        """
        self.exit(USER_ERROR, f"prunemip: error: {message} (see {self.prog} --help)\n")


def formatter(prog: str) -> argparse.HelpFormatter:
    """The help layout of every command: descriptions and epilogs as written, wide option column.

    Args:
        prog: the program name argparse shows in the usage line.

    Returns:
        The formatter argparse calls ``formatter_class`` for.
    """
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def examples(*lines: str) -> str:
    """A help epilog listing example command lines, each indented by two spaces.

    Args:
        lines: the command lines; a continuation line starts with four spaces of its own.

    Returns:
        ``example:`` (one line) or ``examples:`` followed by the lines.
    """
    heading = "example:" if len(lines) == 1 else "examples:"
    return "\n  ".join((heading, *lines))


def output_file(path: str | None, flag: str, suffixes: tuple[str, ...] = ()) -> Path | None:
    """The file an output flag names, checked before any work, so a mistake costs no solving time.

    Args:
        path: the flag's value; empty or ``None`` for no file.
        flag: the flag, for the message (e.g. ``"--json"``).
        suffixes: the suffixes the file may have (any when empty).

    Returns:
        The path, or ``None`` when no file is asked for.

    Raises:
        PrunemipError: for another suffix, a folder given as the file, or a folder that does not exist.
    """
    if not path:
        return None
    target = Path(path)
    if suffixes and target.suffix.lower() not in suffixes:
        raise PrunemipError(f"{flag} must name a {' or '.join(suffixes)} file, got {path!r}")
    if target.is_dir():
        raise PrunemipError(f"{flag}: {target} is a folder, not a file name")
    if not target.resolve().parent.is_dir():
        raise PrunemipError(f"{flag}: folder {target.parent} does not exist")
    return target


def _number(convert: Callable[[str], Any], *, positive: bool) -> Callable[[str], Any]:
    """An argparse type: ``convert(text)``, refused at or below 0 (``positive``) or below 0;
    named after ``convert`` in argparse's errors ("invalid float value")."""

    def parse(text: str) -> Any:
        value = convert(text)
        if not (value > 0 if positive else value >= 0):
            raise argparse.ArgumentTypeError(f"must be {'>' if positive else '>='} 0, got {text}")
        return value

    parse.__name__ = convert.__name__
    return parse


#: argparse types: a float > 0, a float >= 0 (NaN is refused by both), an int >= 0.
positive_float = _number(float, positive=True)
nonnegative_float = _number(float, positive=False)
nonnegative_int = _number(int, positive=False)


def add_trust_pickle(parser: Arguments, detail: str = "") -> None:
    """``--trust-pickle``: let ``load_network`` unpickle a whole module.

    Args:
        parser: the parser or argument group to add the flag to.
        detail: text appended to the help (e.g. a warning in parentheses).
    """
    help_text = f"allow loading a pickled whole module{detail}"
    parser.add_argument("--trust-pickle", action="store_true", help=help_text)


def add_input_range(parser: Arguments, help_text: str) -> None:
    """``--input-range LO HI``: the valid input values, when the model does not record them.

    Args:
        parser: the parser or argument group to add the flag to.
        help_text: what the range is used for, and its default.
    """
    parser.add_argument("--input-range", nargs=2, type=float, metavar=("LO", "HI"), help=help_text)


def add_bounds_argument(group: Arguments, purpose: str, default: str = DEFAULT_BOUNDS, why: str = "") -> None:
    """``--bounds``: one of the registry's methods; the help lists each with its summary,
    ``PURPOSE (NAME: SUMMARY; ...; default DEFAULT: WHY)``.

    Args:
        group: the parser or argument group to add the flag to.
        purpose: what the bounds are for, the start of the help text.
        default: the command's default method.
        why: why this default, shown after it.
    """
    methods = "; ".join(f"{method.name}: {method.summary}" for method in METHODS)
    reason = f": {why}" if why else ""
    group.add_argument(
        "--bounds",
        choices=BOUNDS_CHOICES,
        default=default,
        help=f"{purpose} ({methods}; default {default}{reason})".replace("%", "%%"),
    )


def add_device_argument(group: Arguments) -> None:
    """``--device``: where the batched falsification runs (cpu, or cuda where torch sees a GPU).

    Args:
        group: the parser or argument group to add the flag to.
    """
    group.add_argument(
        "--device",
        choices=DEVICES,
        default="cpu",
        help="where the gradient falsification runs: cpu (default) or cuda (same verdicts)",
    )


def add_instance_arguments(parser: argparse.ArgumentParser) -> None:
    """The network, the input point, the ball around it and the encoding (``encode``, ``attack``).

    Args:
        parser: the command's parser.
    """
    parser.add_argument(
        "model", help="network file: .pt (state_dict or TorchScript), .onnx, or prunemip .npz"
    )
    point = parser.add_argument_group("input point")
    point.add_argument(
        "--dataset", help="take the point from this dataset (digits, mnist, fashion-mnist, ...)"
    )
    point.add_argument("--index", type=int, default=0, help="image index in the split (default 0)")
    point.add_argument("--split", default="test", choices=("train", "test"), help="dataset split (test)")
    point.add_argument("--data-dir", help="folder with the dataset's IDX/NPZ files")
    point.add_argument("--data-seed", type=int, default=0, help="seed of the dataset's split (default 0)")
    point.add_argument("--input", dest="input_path", help="take the point from a .npy file instead")
    point.add_argument(
        "--label", type=int, help="true label (default: the dataset's, or the prediction at --input)"
    )
    add_input_range(point, "valid input values (default: the model's metadata, else [0, 1] with --dataset)")
    region = parser.add_argument_group("perturbation")
    region.add_argument("--norm", choices=BALL_NORMS, default="linf", help="ball norm (default linf)")
    region.add_argument("--eps", type=float, default=0.05, help="ball radius ε (L∞) or δ (L1) (default 0.05)")
    encoding = parser.add_argument_group("encoding")
    encoding.add_argument(
        "--formulation",
        choices=("substituted", "variable"),
        default=None,
        help="ẑ substituted into the big-M rows, or a column with one equality row (default: measured best)",
    )
    add_bounds_argument(encoding, "neuron bounds")
    encoding.add_argument(
        "--bounds-budget",
        type=positive_float,
        default=None,
        help="seconds for LP/MIP bound tightening (default: auto: 10%% of --time-limit, at most 30)",
    )
    encoding.add_argument(
        "--lp-cuts",
        type=nonnegative_int,
        default=0,
        metavar="ROUNDS",
        help="LP tightening: rounds of ideal-formulation cuts per LP (Anderson et al. 2020; tighter, slower; "
        "default 0)",
    )
    add_trust_pickle(encoding, " (runs code from the file: only for files you trust)")


def add_solver_arguments(parser: argparse.ArgumentParser) -> None:
    """HiGHS's time limit, threads, seed, gap and log (``attack``).

    Args:
        parser: the command's parser.
    """
    solver = parser.add_argument_group("HiGHS")
    solver.add_argument(
        "--time-limit", type=positive_float, default=600.0, help="seconds for the whole attack (600)"
    )
    solver.add_argument("--threads", type=int, help="HiGHS threads (default: HiGHS's choice)")
    solver.add_argument("--solver-seed", type=int, default=0, help="HiGHS random seed (default 0)")
    solver.add_argument("--gap", type=float, default=1e-4, help="relative MIP gap in optimize mode (1e-4)")
    solver.add_argument("--log", action="store_true", help="show the HiGHS log")
