"""The demo's ``validate_data`` stage: runs :mod:`curation.stages.validate_data` (the stage ``curate init`` gives users)."""

from curation.stages.validate_data import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
