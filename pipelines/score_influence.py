"""The demo's ``score_influence`` stage: runs :mod:`curation.stages.score_influence` (the stage ``curate init`` gives users)."""

from curation.stages.score_influence import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
