"""The demo's ``refresh_predictor`` stage: runs :mod:`curation.stages.refresh_predictor` (the stage ``curate init`` gives
users)."""

from curation.stages.refresh_predictor import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
