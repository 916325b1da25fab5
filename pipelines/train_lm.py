"""The demo's ``train_lm`` stage: runs :mod:`curation.stages.train_lm` (the stage ``curate init`` gives users)."""

from curation.stages.train_lm import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
