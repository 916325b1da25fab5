"""Label-error detection by self-influence vs cleanlab's self-confidence ranking, on real and injected errors.

1. 20 Newsgroups test set (7,532 posts, 82 MTurk-confirmed label errors, cleanlab's "Pervasive Label Errors"):
   TF-IDF -> 256-dim truncated SVD (unit rows) -> multinomial logistic regression trained by SGD. cleanlab's
   ranking is computed from the *same* model's 5-fold out-of-fold probabilities (score = 1 - p(given label),
   cleanlab's ``self_confidence`` label-quality score); ours is TracIn self-influence of the model trained on all
   rows (5 checkpoints, learning-rate weighted). Metric: average precision over all 7,532 rows.
2. Digits with 10% flipped labels (the demo's MLP recipe): TracIn and TRAK self-influence AP.

Writes ``benchmarks/influence/results/label_errors_a1.json``. Run: ``python benchmarks/influence/label_errors_a1.py``
(about 3-5 minutes on 2 cores; needs ../shared/data or CURATION_SHARED_DATA).
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch
from sklearn.metrics import average_precision_score

from curation.attribution.base import CheckpointModel, ScoringContext
from curation.attribution.tracin import TracInScorer
from curation.attribution.trak import TRAKScorer
from curation.models.classifiers import ClassifierConfig, LogisticRegressionAdapter

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "benchmarks" / "influence" / "results" / "label_errors_a1.json"
EPOCHS, LR, BATCH, N_CKPT, SVD_DIM = 10, 0.5, 64, 5, 256


def shared_data() -> Path:
    return Path(os.environ.get("CURATION_SHARED_DATA", ROOT.parent / "shared" / "data"))


def news_features(texts: list[str]) -> np.ndarray:
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf = TfidfVectorizer(sublinear_tf=True, min_df=3, max_df=0.5, stop_words="english").fit_transform(texts)
    z = TruncatedSVD(SVD_DIM, random_state=0).fit_transform(tfidf)
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def fit(adapter: LogisticRegressionAdapter, x: np.ndarray, y: np.ndarray) -> list[CheckpointModel]:
    """SGD (momentum 0.9, batch 64, seeded) for EPOCHS epochs; a checkpoint every EPOCHS / N_CKPT epochs."""
    torch.manual_seed(0)
    model = adapter.build_model()
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    rng = np.random.default_rng(0)
    checkpoints = []
    for epoch in range(EPOCHS):
        perm = rng.permutation(len(y))
        for s in range(0, len(y), BATCH):
            b = perm[s : s + BATCH]
            loss = torch.nn.functional.cross_entropy(model(xt[b]), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if (epoch + 1) % (EPOCHS // N_CKPT) == 0:
            checkpoints.append(CheckpointModel(model=copy.deepcopy(model).eval(), learning_rate=LR))
    return checkpoints


def news20() -> dict:
    from sklearn.model_selection import StratifiedKFold

    data = pl.read_parquet(shared_data() / "20newsgroups" / "test.parquet")
    errors = pl.read_parquet(shared_data() / "label_errors" / "20news_cleanlab.parquet")
    assert (errors["given_label"].to_numpy() == data["label"].to_numpy()).all()
    truth = data["mturk_label_error"].to_numpy()
    labels = data["label"].to_numpy().astype(np.int64)
    t0 = time.perf_counter()
    x = news_features(data["text"].to_list())
    adapter = LogisticRegressionAdapter(ClassifierConfig(n_features=SVD_DIM, n_classes=20))
    oof = np.zeros((len(labels), 20))
    for train_idx, held in StratifiedKFold(5, shuffle=True, random_state=0).split(x, labels):
        model = fit(adapter, x[train_idx], labels[train_idx])[-1].model
        with torch.no_grad():
            oof[held] = torch.softmax(model(torch.tensor(x[held], dtype=torch.float32)), -1).numpy()
    cleanlab_score = 1 - oof[np.arange(len(labels)), labels]
    frame = pl.DataFrame({"example_id": np.arange(len(labels)), "features": x.tolist(), "label": labels})
    checkpoints = tuple(fit(adapter, x, labels))
    ctx = ScoringContext(adapter=adapter, checkpoints=checkpoints, train=frame, queries=frame.head(1),
                         batch_size=512)
    ours = TracInScorer().self_influence(ctx)
    provided = np.stack(errors["cv_pred_probs"].to_list())
    return {
        "rows": len(labels), "label_errors": int(truth.sum()),
        "model": f"tfidf+svd{SVD_DIM} logistic regression, SGD {EPOCHS} epochs lr {LR}, {N_CKPT} checkpoints",
        "oof_accuracy": float((oof.argmax(1) == labels).mean()),
        "ap_tracin_self_influence": float(average_precision_score(truth, ours)),
        "ap_cleanlab_self_confidence_same_model_oof": float(average_precision_score(truth, cleanlab_score)),
        "ap_cleanlab_self_confidence_published_cv_probs": float(
            average_precision_score(truth, 1 - provided[np.arange(len(labels)), labels])),
        "seconds": time.perf_counter() - t0,
    }


def digits() -> dict:
    import tempfile

    from curation.data.digits import DigitsConfig, build_digits
    from curation.gradients.jobs import load_checkpoints
    from curation.models.classifiers import MLPClassifierAdapter
    from curation.training import TrainConfig, train
    from curation.training.outputs import train_into

    train_frame, test_frame, noisy = build_digits(DigitsConfig(noise_fraction=0.1, seed=0))
    recipe = TrainConfig(epochs=30.0, batch_size=64, optimizer="sgd", learning_rate=0.1, momentum=0.9,
                         weight_decay=1e-4, schedule="constant", n_checkpoints=5, eval_every=10**6, seed=0)
    truth = train_frame["example_id"].is_in(noisy["example_id"].to_list()).to_numpy()
    with tempfile.TemporaryDirectory() as tmp:
        train_into(tmp, lambda d: train(MLPClassifierAdapter(ClassifierConfig()), train_frame, recipe,
                                        checkpoint_dir=d, show_progress=False), source_digest="digits")
        adapter, checkpoints = load_checkpoints(tmp)
    ctx = ScoringContext(adapter=adapter, checkpoints=checkpoints, train=train_frame, queries=test_frame.head(1),
                         batch_size=256)
    t0 = time.perf_counter()
    tracin = TracInScorer().self_influence(ctx)
    t_tracin = time.perf_counter() - t0
    with torch.no_grad():
        batch = adapter.collate(train_frame)
        loss = adapter.example_losses(checkpoints[-1].model, batch).numpy()
    return {
        "rows": train_frame.height, "flipped": int(truth.sum()),
        "ap_tracin_self_influence": float(average_precision_score(truth, tracin)),
        "ap_trak_self_influence": float(average_precision_score(truth, TRAKScorer().self_influence(ctx))),
        "ap_final_loss": float(average_precision_score(truth, loss)),
        "tracin_seconds": t_tracin,
    }


def main() -> None:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    results = {"digits": digits()}
    print(json.dumps(results, indent=2), flush=True)
    if (shared_data() / "20newsgroups").is_dir():
        results["news20"] = news20()
    else:
        print(f"skipping 20 Newsgroups: {shared_data()} not found", file=sys.stderr)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
