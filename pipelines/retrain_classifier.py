"""The demo's ``retrain_classifier`` stage: runs :mod:`curation.stages.retrain_classifier` (the stage ``curate init`` gives users)."""

from curation.stages.retrain_classifier import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
