"""The demo's ``provenance_suspects`` stage: runs :mod:`curation.stages.provenance_suspects` (the stage ``curate init`` gives users)."""

from curation.stages.provenance_suspects import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
