"""Job function for the scheduler fault tests, referenced textually from the job store (the scheduler processes
get this folder on PYTHONPATH): each execution appends "<pid> <time>" to a file."""

import os
import time


def record(path: str, **_schedule: object) -> None:  # the other kwargs make it a listable schedule
    with open(path, "a") as out:
        out.write(f"{os.getpid()} {time.time()}\n")
