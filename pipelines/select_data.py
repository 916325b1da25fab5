"""The demo's ``select_data`` stage: runs :mod:`curation.stages.select_data` (the stage ``curate init`` gives users)."""

from curation.stages.select_data import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
