"""The live status of a running query, and Ctrl-C as "stop and keep what you have".

:func:`searching` wraps an ``attack`` or ``verify`` search: the first Ctrl-C asks the engine
to stop (:mod:`prunemip.interrupts`), which returns its best result so far marked
interrupted; the command writes its files and then :func:`raise_if_interrupted` ends it with
the documented exit status (:data:`~prunemip.cli.main.INTERRUPTED`). A second Ctrl-C aborts
at once. On a terminal a rich live display shows one line per target or disjunct (stage,
elapsed time, best slack found, best proven bound, open subdomains); it is transient, so
the final tables replace it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.live import Live
from rich.text import Text

from prunemip import interrupts
from prunemip.engine.progress import Progress, ProgressHook

#: How many times a second the live display redraws.
REFRESH_PER_SECOND = 4


class _StatusLines:
    """The latest :class:`Progress` per disjunct, drawn as one line each in first-seen order."""

    def __init__(self, live: Live) -> None:
        self.live = live
        self.lines: dict[str, Progress] = {}

    def __call__(self, progress: Progress) -> None:
        self.lines[progress.name] = progress
        text = Text()
        for index, line in enumerate(self.lines.values()):
            if index:
                text.append("\n")
            text.append(line.line(), style="dim" if line.settled else "")
        text.append("\n(Ctrl-C: stop and keep the best result so far)", style="dim")
        self.live.update(text)


@contextlib.contextmanager
def searching(console: Console) -> Iterator[ProgressHook | None]:
    """Run a search with Ctrl-C deferred and, on a terminal, a live status display.

    Args:
        console: the command's console.

    Yields:
        The progress hook to hand the engine (None when the console is not a terminal).
    """
    with interrupts.deferred():
        if not console.is_terminal:
            yield None
            return
        with Live(console=console, refresh_per_second=REFRESH_PER_SECOND, transient=True) as live:
            yield _StatusLines(live)


def raise_if_interrupted(interrupted: bool, console: Console) -> None:
    """After the results are written: end an interrupted command as Ctrl-C does.

    Args:
        interrupted: whether Ctrl-C stopped the search.
        console: where the note goes.

    Raises:
        KeyboardInterrupt: when ``interrupted``; ``prunemip`` exits with status 130.
    """
    if interrupted:
        console.print("interrupted: the results above are the best found before Ctrl-C")
        raise KeyboardInterrupt
