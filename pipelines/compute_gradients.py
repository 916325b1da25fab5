"""The demo's ``compute_gradients`` stage: runs :mod:`curation.stages.compute_gradients` (the stage ``curate init`` gives users)."""

from curation.stages.compute_gradients import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
