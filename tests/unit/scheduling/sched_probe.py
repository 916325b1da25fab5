"""Job functions referenced textually by the scheduler tests (importable because pytest puts this folder on
sys.path): each call appends one line to a file, so the tests can count executions."""

import time


def record(path: str) -> None:
    with open(path, "a") as out:
        out.write(f"{time.time()}\n")
