"""The demo's ``train_classifier`` stage: runs :mod:`curation.stages.train_classifier` (the stage ``curate init`` gives users)."""

from curation.stages.train_classifier import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
