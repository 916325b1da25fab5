"""MLflow integration; the only package that imports ``mlflow``.

``RunRecorder`` opens one MLflow run per stage execution and writes the same headline numbers to
``metrics/<stage>.json`` for ``dvc metrics``. ``registry`` registers checkpoints as model versions and fetches
them back from ``models:/name/version`` URIs.
"""

from curation.tracking.recorder import RunRecorder, configure_tracking, tracking_uri

__all__ = ["RunRecorder", "configure_tracking", "tracking_uri"]
