"""The demo's ``detect_label_errors`` stage: runs :mod:`curation.stages.detect_label_errors` (the stage ``curate init`` gives users)."""

from curation.stages.detect_label_errors import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
