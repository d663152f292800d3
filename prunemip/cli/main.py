"""The ``prunemip`` program: the parser of every command, and ``main``'s exit statuses.

Each command family owns its flags (``add_parser``) and its runner in a module of its own;
:data:`COMMANDS` lists them in the order ``prunemip --help`` shows. A user mistake prints
one ``prunemip: error: ...`` line on stderr and exits with :data:`USER_ERROR`; nothing is
half-written (every output file is written to a temporary sibling and renamed into place).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console

import prunemip.cli.attack as attack
import prunemip.cli.data as data
import prunemip.cli.demo as demo
import prunemip.cli.example as example
import prunemip.cli.experiment as experiment
import prunemip.cli.export as export
import prunemip.cli.info as info
import prunemip.cli.train as train
import prunemip.cli.verify as verify
from prunemip import __version__
from prunemip.cli.arguments import USER_ERROR, Parser, formatter
from prunemip.errors import PrunemipError

#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130


@dataclass(frozen=True)
class Command:
    """A command: its name, the function registering its parser, and its runner."""

    name: str
    add_parser: Callable[[Any, Any], None]
    run: Callable[[argparse.Namespace, Console], None]


#: Every command, in the order ``prunemip --help`` lists them.
COMMANDS: tuple[Command, ...] = (
    Command("demo", demo.add_parser, demo.run),
    Command("example", example.add_parser, example.run),
    Command("encode", attack.add_encode_parser, attack.run_encode),
    Command("attack", attack.add_attack_parser, attack.run_attack),
    Command("info", info.add_parser, info.run),
    Command("export", export.add_parser, export.run),
    Command("data", data.add_parser, data.run),
    Command("verify", verify.add_parser, verify.run),
    Command("experiment", experiment.add_parser, experiment.run),
    Command("train", train.add_train_parser, train.run_train),
    Command("prune", train.add_prune_parser, train.run_prune),
)


def build_parser() -> argparse.ArgumentParser:
    """The ``prunemip`` parser with every command of :data:`COMMANDS`.

    Returns:
        The parser; its errors are one line and exit with :data:`USER_ERROR`.
    """
    parser = Parser(
        prog="prunemip",
        formatter_class=formatter,
        description="Prune ReLU networks and solve small, tightly bounded big-M MIPs over them with HiGHS.",
        epilog="Start with `prunemip demo`; every command has its own --help with an example.",
    )
    parser.add_argument("--version", action="version", version=f"prunemip {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(commands, formatter)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``prunemip`` command.

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0, :data:`USER_ERROR` after a :class:`PrunemipError` (one line on
        stderr, no traceback), or :data:`INTERRUPTED` after Ctrl-C. A bad flag exits from
        the parser with :data:`USER_ERROR` (``SystemExit``).
    """
    args = build_parser().parse_args(argv)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
    run = next(command.run for command in COMMANDS if command.name == args.command)
    try:
        run(args, console)
    except PrunemipError as error:
        print(f"prunemip: error: {error}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        print("prunemip: interrupted", file=sys.stderr)
        return INTERRUPTED
    return 0
