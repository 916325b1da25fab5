"""The demo's ``unlearn`` stage: runs :mod:`curation.stages.unlearn` (the stage ``curate init`` gives users)."""

from curation.stages.unlearn import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
