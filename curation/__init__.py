"""curation: training-data curation for DVC + MLflow projects.

The library never reads ``params.yaml``, never opens an MLflow run on its own and never assumes a DVC repository;
``curation/stages/`` and the CLI do that glue. Heavy submodules are imported lazily by their users.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
