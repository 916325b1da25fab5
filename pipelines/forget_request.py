"""The demo's ``forget_request`` stage: runs :mod:`curation.stages.forget_request` (the stage ``curate init`` gives users)."""

from curation.stages.forget_request import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
