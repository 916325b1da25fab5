"""This repository's demo pipeline: one thin file per DVC stage, ``python -m pipelines.<stage>``, each running the
stage of the same name in :mod:`curation.stages`. Not installed with the package, so a user's own ``pipelines/``
folder is never shadowed."""
