"""The demo's ``test_provenance`` stage: runs :mod:`curation.stages.test_provenance` (the stage ``curate init`` gives users)."""

from curation.stages.test_provenance import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
