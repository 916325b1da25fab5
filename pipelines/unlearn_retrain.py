"""The demo's ``unlearn_retrain`` stage: runs :mod:`curation.stages.unlearn_retrain` (the stage ``curate init`` gives users)."""

from curation.stages.unlearn_retrain import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
