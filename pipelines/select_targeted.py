"""The demo's ``select_targeted`` stage: runs :mod:`curation.stages.select_targeted` (the stage ``curate init`` gives
users)."""

from curation.stages.select_targeted import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
