"""Progress reporting: a rich progress bar on a terminal, periodic log lines otherwise (nightly jobs, CI)."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator

log = logging.getLogger("curation.progress")


@contextlib.contextmanager
def progress_bar(*, total: int, description: str, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; draws a bar when stderr is a TTY, else logs about every 10% or 30 s."""
    if enabled and sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        with Progress(
            "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            transient=True, console=Console(stderr=True),  # the stream whose TTY-ness was checked
        ) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n=1: bar.advance(task, n)
        return
    state = {"done": 0, "last_pct": -10, "last_time": time.monotonic()}

    def advance(n: int = 1) -> None:
        state["done"] += n
        pct = 100 * state["done"] // max(total, 1)
        now = time.monotonic()
        finished = state["done"] >= total and state["last_pct"] < 100  # always log the final line once
        if enabled and (pct >= state["last_pct"] + 10 or now - state["last_time"] > 30 or finished):
            log.info("%s: %d/%d (%d%%)", description, state["done"], total, pct)
            state["last_pct"], state["last_time"] = pct, now

    yield advance
