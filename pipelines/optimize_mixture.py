"""The demo's ``optimize_mixture`` stage: runs :mod:`curation.stages.optimize_mixture` (the stage ``curate init`` gives users)."""

from curation.stages.optimize_mixture import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
