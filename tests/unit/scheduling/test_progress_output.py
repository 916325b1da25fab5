"""Progress as a nightly job sees it (log lines, ending at 100%) and as a person at a terminal sees it (a bar)."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys

SNIPPET = """
import logging, sys
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
from curation.progress import progress_bar
with progress_bar(total=95, description="demo loop") as advance:
    for _ in range(95):
        advance(1)
"""


def test_without_a_terminal_progress_is_logged_every_tenth_and_at_the_end() -> None:
    done = subprocess.run([sys.executable, "-c", SNIPPET], capture_output=True, text=True, check=True, timeout=120)
    lines = [line for line in done.stderr.splitlines() if "curation.progress" in line]
    counts = [int(m.group(1)) for m in (re.search(r"demo loop: (\d+)/95", line) for line in lines) if m]
    assert counts[-1] == 95 and lines[-1].endswith("(100%)")
    assert 9 <= len(counts) <= 12 and counts == sorted(counts)
    assert "━" not in done.stderr  # no bar drawn into a log


def test_on_a_terminal_a_bar_is_drawn_instead_of_log_lines() -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", SNIPPET], stdin=slave, stdout=slave, stderr=slave,
                            env={**os.environ, "TERM": "xterm", "COLUMNS": "100"}, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(120)
    os.close(master)
    out = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, out
    assert "demo loop" in out and "━" in out
    assert "curation.progress" not in out
