"""Stage blocks that ``curate init`` adds to a user's ``dvc.yaml`` and ``params.yaml``."""
