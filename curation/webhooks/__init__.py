"""MLflow registry webhooks: a signed-request receiver that queues one curation job per model version.

``signature`` verifies ``X-MLflow-Signature`` and the timestamp before anything else looks at the body;
``ledger`` (sqlite) remembers delivery ids (replay protection) and model versions (one job per version);
``receiver`` is the HTTP endpoint; ``worker`` runs queued jobs (``dvc repro <target>`` with trigger=webhook)
and sets the job's verdicts as tags on the model version.
"""

from curation.webhooks.ledger import Ledger, QueuedJob
from curation.webhooks.receiver import WebhookReceiver
from curation.webhooks.signature import WebhookRejected, sign, verify_request
from curation.webhooks.worker import JobWorker

__all__ = ["JobWorker", "Ledger", "QueuedJob", "WebhookReceiver", "WebhookRejected", "sign", "verify_request"]
