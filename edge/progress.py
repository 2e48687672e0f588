"""Progress bars for long commands (backup, restore, export, vacuum, batch provisioning).

Drawn on standard error, and only when it is a terminal: in a log, a pipe or a test the command
prints its result and nothing else. Library functions take a plain ``progress(done, total)``
callback (or None) and never draw anything themselves.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

Progress = Callable[[int, int], None]


def wanted() -> bool:
    return sys.stderr.isatty()


@contextmanager
def progress_bar(label: str, *, enabled: bool = True) -> Iterator[Progress | None]:
    """A ``progress(done, total)`` callback drawing a bar on a terminal; None when stderr is not one
    (a log, a pipe, a test), so nothing but the result is printed there."""
    if not enabled or not wanted():
        yield None
        return
    bar = None
    shown = 0

    def progress(done: int, total: int) -> None:
        nonlocal bar, shown
        if bar is None:
            bar = click.progressbar(length=max(1, total), label=label, file=sys.stderr)
            bar.__enter__()
        bar.update(done - shown)
        shown = done

    try:
        yield progress
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
