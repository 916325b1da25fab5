"""The demo's ``prepare_data`` stage: runs :mod:`curation.stages.prepare_data` (the stage ``curate init`` gives users)."""

from curation.stages.prepare_data import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
