"""The demo's ``train_lm_mixture`` stage: runs :mod:`curation.stages.train_lm_mixture` (the stage ``curate init`` gives users)."""

from curation.stages.train_lm_mixture import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
