"""The demo's ``verify_unlearning`` stage: runs :mod:`curation.stages.verify_unlearning` (the stage ``curate init`` gives users)."""

from curation.stages.verify_unlearning import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
