"""The ``prunemip`` command line: one module per command family.

``demo`` (:mod:`.demo`), ``encode`` and ``attack`` (:mod:`.attack`), ``info`` (:mod:`.info`),
``data`` (:mod:`.data`), ``verify`` (:mod:`.verify`), ``experiment`` (:mod:`.experiment`),
``train`` and ``prune`` (:mod:`.train`); shared flags in :mod:`.arguments`, the program in
:mod:`.main`. Adding a command: a module with ``add_parser(commands, formatter)`` and
``run(args, console)``, listed in :data:`prunemip.cli.main.COMMANDS`.
"""

from prunemip.cli.arguments import USER_ERROR
from prunemip.cli.main import INTERRUPTED, build_parser, main

__all__ = ["INTERRUPTED", "USER_ERROR", "build_parser", "main"]
