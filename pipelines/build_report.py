"""The demo's ``build_report`` stage: runs :mod:`curation.stages.build_report` (the stage ``curate init`` gives users)."""

from curation.stages.build_report import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
