"""Learned influence predictors (methods spec section 12): label a sample with an expensive oracle, train a small
network on cheap features, predict the rest of the pool.

- Oracle (MATES-style one-step probe, ``curation.selection.targeted.oracle``): from the current model, one SGD step
  of size ``lr`` on a single candidate (restricted to the adapter's tracked modules), then the mean reference loss;
  the label is the change of that loss (negative = the candidate helps). MATES takes an Adam step with the
  checkpoint's optimizer state and reloads it per probe; a plain SGD step on the tracked parameters is our cheaper
  stand-in [O]. The reference set is a sample of the task, so ``refresh`` probes its two halves in one pass and
  reports their rank agreement (the oracle's test-retest figure).
- Features (``PredictorConfig.features``): ``gradient`` (default) = the current model's per-example loss gradient,
  sjlt-projected, with the row's loss and log gradient norm; ``text`` = hashed character 2-4-gram TF-IDF reduced by
  truncated SVD (model-free; no sentence-embedding model can be downloaded here, MATES/NN-CIFT use BERT/bge).
  On the six-domain corpus the probe label is dominated by how far a single step moves the model (its gradient
  norm), which text cannot see: held-out Spearman with the oracle 0.2-0.3 from text, >= 0.6 from gradient
  features (benchmarks/selection/predictor_spearman.py, docs/benchmarks.md).
- ``MATESPredictor``: a 2-layer MLP regressor on the labels -- rank-normal scores by default (the probe labels are
  heavy-tailed; MATES z-normalises, ``label_transform="zscore"``) -- MSE, Adam, keeping the epoch with the best
  Spearman on a 10% validation split, as MATES selects its model.
- ``NNCIFTPredictor``: NN-CIFT's pairwise InfluenceNetwork ``[e_i; 0; e_j] -> Linear(100) -> ReLU -> Linear(1)``
  trained on oracle train x target influence values of a fraction of the pool, predicting the remaining rows.

Both are refreshable: ``refresh`` re-labels a fresh sample from the *current* model and retrains, which is what a
scheduled stage between training rounds calls (MATES re-trains every stage because preferences drift).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import polars as pl
import torch
from scipy.stats import spearmanr
from torch import nn

from curation.errors import DataContractError
from curation.gradients.per_example import per_example_gradients
from curation.gradients.projection import ProjectionConfig, Projector
from curation.models.base import ModelAdapter
from curation.selection.targeted.oracle import probe_label_batches, probe_loss_changes


def text_embeddings(texts: list[str], *, dim: int = 64, seed: int = 0) -> np.ndarray:
    """Unit-norm ``[n, dim]`` embeddings: hashed char 2-4-gram TF-IDF reduced by truncated SVD."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer

    counts = HashingVectorizer(analyzer="char_wb", ngram_range=(2, 4), n_features=2**16, alternate_sign=False,
                               norm=None).transform(texts)
    tfidf = TfidfTransformer(sublinear_tf=True).fit_transform(counts)
    k = max(1, min(dim, tfidf.shape[0] - 1, tfidf.shape[1] - 1))
    emb = TruncatedSVD(n_components=k, random_state=seed).fit_transform(tfidf)
    return (emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def one_step_probe_labels(adapter: ModelAdapter, model: nn.Module, candidates: pl.DataFrame,
                          reference: pl.DataFrame, *, lr: float, batch_size: int = 16) -> np.ndarray:
    """Change of the mean reference loss after one SGD step of size ``lr`` on each candidate alone."""
    return probe_loss_changes(adapter, model, candidates, reference, lr=lr, batch_size=batch_size).mean(axis=1)


def gradient_embeddings(adapter: ModelAdapter, model: nn.Module, frame: pl.DataFrame, *, dim: int, seed: int = 0,
                        batch_size: int = 32) -> np.ndarray:
    """``[n, dim + 2]`` model-aware features: the sjlt-projected per-example loss gradient (the adapter's tracked
    modules) with the row's loss and log gradient norm, each column standardised over ``frame``.

    The probe label is, to first order, ``-lr * g_i . g_ref``: a function of the candidate's own gradient, which a
    random projection keeps up to a small distortion; the loss and the norm carry the second-order part (rows with
    large gradients overshoot). Text embeddings see none of this, which is why they predict the probe poorly.
    """
    names = adapter.tracked_modules(model)
    projector: Projector | None = None
    rows, scalars = [], []
    for start in range(0, frame.height, batch_size):
        batch = adapter.collate(frame[start:start + batch_size])
        g = per_example_gradients(adapter, model, batch, modules=names).detach()
        if projector is None:
            projector = Projector(g.shape[1], ProjectionConfig(kind="sjlt", dim=dim, seed=seed))
        rows.append(projector(g).numpy())
        with torch.no_grad():
            loss = adapter.example_losses(model, batch)
        scalars.append(np.stack([loss.numpy(), np.log(g.norm(dim=1).clamp_min(1e-12).numpy())], axis=1))
    out = np.concatenate([np.concatenate(rows), np.concatenate(scalars)], axis=1).astype(np.float64)
    return ((out - out.mean(0)) / np.maximum(out.std(0), 1e-12)).astype(np.float32)


def pool_features(adapter: ModelAdapter, model: nn.Module, frame: pl.DataFrame, config: PredictorConfig
                  ) -> np.ndarray:
    """The predictor's inputs for ``frame`` as ``config.features`` names them."""
    parts = []
    if config.features in ("text", "text+gradient"):
        parts.append(text_embeddings(frame["text"].to_list(), dim=config.embedding_dim, seed=config.seed))
    if config.features in ("gradient", "text+gradient"):
        parts.append(gradient_embeddings(adapter, model, frame, dim=config.gradient_dim, seed=config.seed))
    return np.concatenate(parts, axis=1)


def rank_normal(values: np.ndarray) -> np.ndarray:
    """Normal scores of the ranks (``Phi^-1((rank - 0.5) / n)``): a label scale that ignores heavy tails."""
    from scipy.stats import norm, rankdata

    return norm.ppf((rankdata(values) - 0.5) / len(values))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (0 when either side is constant)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


FEATURES = ("text", "gradient", "text+gradient")
LABEL_TRANSFORMS = ("zscore", "rank")


@dataclass(frozen=True, kw_only=True)
class PredictorConfig:
    """Oracle sample, network and training of a learned influence predictor."""

    sample_fraction: float = field(default=0.2, metadata={"help": "share of the pool labelled by the oracle"})
    hidden: int = field(default=100, metadata={"help": "hidden units of the predictor"})
    epochs: int = field(default=200, metadata={"help": "training epochs (best validation Spearman is kept)"})
    learning_rate: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    weight_decay: float = field(default=1e-4, metadata={"help": "Adam weight decay"})
    val_fraction: float = field(default=0.1, metadata={"help": "labelled share held out for model selection"})
    embedding_dim: int = field(default=64, metadata={"help": "width of the frozen text embeddings"})
    probe_lr: float = field(default=0.05, metadata={"help": "step size of the one-step oracle probe"})
    seed: int = field(default=0, metadata={"help": "seed of the sample, split and network"})
    features: str = field(default="gradient", metadata={
        "help": "MATES refresh inputs: text (char n-gram embedding) | gradient (projected per-example gradient of "
                "the current model, its loss and log norm) | text+gradient"})
    gradient_dim: int = field(default=512, metadata={"help": "projection width of the gradient features"})
    label_transform: str = field(default="rank", metadata={
        "help": "MATES training labels: zscore (as MATES) | rank (normal scores of the ranks, robust to tails)"})

    def __post_init__(self) -> None:
        if self.features not in FEATURES or self.label_transform not in LABEL_TRANSFORMS:
            raise ValueError(f"features must be one of {FEATURES} and label_transform one of {LABEL_TRANSFORMS}")
        if self.gradient_dim < 1:
            raise ValueError("gradient_dim must be positive")
        if not 0 < self.sample_fraction <= 1 or not 0 < self.val_fraction < 1:
            raise ValueError("sample_fraction must lie in (0, 1] and val_fraction in (0, 1)")
        if self.hidden < 1 or self.epochs < 1 or self.learning_rate <= 0 or self.embedding_dim < 1:
            raise ValueError("hidden, epochs, learning_rate and embedding_dim must be positive")


def _fit(net: nn.Module, x: torch.Tensor, y: torch.Tensor, val: tuple[torch.Tensor, np.ndarray],
         cfg: PredictorConfig) -> float:
    """Full-batch Adam on MSE; restores the epoch with the best validation Spearman (latest on ties), returns it."""
    opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    best, best_state = -np.inf, None
    for _ in range(cfg.epochs):
        net.train()
        loss = nn.functional.mse_loss(net(x).squeeze(-1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        net.eval()
        with torch.no_grad():
            rho = spearman(net(val[0]).squeeze(-1).numpy(), val[1])
        if rho >= best:  # ties go to the later, better-fitted epoch (small validation sets tie often)
            best, best_state = rho, {k: v.clone() for k, v in net.state_dict().items()}
    assert best_state is not None
    net.load_state_dict(best_state)
    return float(best)


class MATESPredictor:
    """Registered as ``mates``: per-example oracle labels of a sample -> an MLP that scores the whole pool."""

    name: ClassVar[str] = "mates"
    config_cls: ClassVar[type] = PredictorConfig

    def __init__(self, config: PredictorConfig | None = None) -> None:
        self.config = config or PredictorConfig()
        self.net: nn.Module | None = None
        self.val_spearman = float("nan")

    def fit(self, embeddings: np.ndarray, labels: np.ndarray) -> MATESPredictor:
        """Train on ``[s, d]`` embeddings of the labelled sample and their oracle labels (lower = better)."""
        cfg = self.config
        if len(embeddings) != len(labels) or len(labels) < 10:
            raise DataContractError(f"MATES: need >= 10 labelled rows with one embedding each, got "
                                    f"{len(labels)} labels for {len(embeddings)} embeddings")
        torch.manual_seed(cfg.seed)
        y = (rank_normal(labels) if cfg.label_transform == "rank"
             else (labels - labels.mean()) / max(labels.std(), 1e-12))
        perm = np.random.default_rng(cfg.seed).permutation(len(y))
        n_val = max(2, round(cfg.val_fraction * len(y)))
        val, train = perm[:n_val], perm[n_val:]
        x = torch.as_tensor(embeddings, dtype=torch.float32)
        self.net = nn.Sequential(nn.Linear(x.shape[1], cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 1))
        self.val_spearman = _fit(self.net, x[train], torch.as_tensor(y[train], dtype=torch.float32),
                                 (x[val], y[val]), cfg)
        return self

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        """Predicted (transformed) oracle label of each row (lower = more helpful)."""
        if self.net is None:
            raise RuntimeError("fit the predictor first")
        with torch.no_grad():
            return self.net(torch.as_tensor(embeddings, dtype=torch.float32)).squeeze(-1).numpy()

    def refresh(self, adapter: ModelAdapter, model: nn.Module, pool: pl.DataFrame,
                reference: pl.DataFrame) -> pl.DataFrame:
        """One selection round: label a fresh sample with one-step probes from the current ``model``, retrain,
        score the pool. Returns ``example_id, score`` (score = minus the prediction: higher = more wanted, the
        Selector's convention), ``oracle_label`` (null where not probed) and per-round timings in ``stats``."""
        cfg = self.config
        t0 = time.perf_counter()
        emb = pool_features(adapter, model, pool, cfg)
        sample = np.sort(np.random.default_rng(cfg.seed).choice(
            pool.height, size=max(10, round(cfg.sample_fraction * pool.height)), replace=False))
        t1 = time.perf_counter()
        if reference.height >= 2:  # two halves in one pass: their agreement is the oracle's test-retest figure
            half = reference.height // 2
            halves = probe_label_batches(adapter, model, pool[sample], [reference[:half], reference[half:]],
                                         lr=cfg.probe_lr)
            labels = halves @ np.array([half, reference.height - half]) / reference.height
            split_half = spearman(halves[:, 0], halves[:, 1])
        else:
            labels, split_half = one_step_probe_labels(adapter, model, pool[sample], reference, lr=cfg.probe_lr), \
                float("nan")
        t2 = time.perf_counter()
        pred = self.fit(emb[sample], labels).predict(emb)
        t3 = time.perf_counter()
        oracle = np.full(pool.height, np.nan)
        oracle[sample] = labels
        self.stats = {"embed_s": t1 - t0, "oracle_s": t2 - t1, "predictor_s": t3 - t2, "probed": len(sample),
                      "oracle_s_per_example": (t2 - t1) / len(sample), "val_spearman": self.val_spearman,
                      "oracle_split_half_spearman": split_half}
        return pl.DataFrame({"example_id": pool["example_id"], "score": -pred,
                             "oracle_label": pl.Series(oracle).fill_nan(None)})


class InfluenceNetwork(nn.Module):
    """NN-CIFT's pairwise regressor: ``[e_i; 0; e_j] -> Linear(hidden) -> ReLU -> Linear(1)``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * dim + 1, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        return self.net(pairs)


def _pairs(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """All ``[e_i; 0; e_j]`` rows, row-major over ``(i, j)``."""
    n, m = len(left), len(right)
    return torch.cat([left.repeat_interleave(m, 0), torch.zeros(n * m, 1), right.repeat(n, 1)], dim=1)


class NNCIFTPredictor:
    """Registered as ``nn_cift``: oracle train x target influence of a fraction of the pool -> InfluenceNetwork
    predictions for every pool row."""

    name: ClassVar[str] = "nn_cift"
    config_cls: ClassVar[type] = PredictorConfig

    def __init__(self, config: PredictorConfig | None = None) -> None:
        self.config = config or PredictorConfig()
        self.net: InfluenceNetwork | None = None
        self.val_spearman = float("nan")

    def fit(self, train_emb: np.ndarray, target_emb: np.ndarray, values: np.ndarray) -> NNCIFTPredictor:
        """``values [s, m]``: oracle influence of the ``s`` labelled train rows on the ``m`` targets."""
        cfg = self.config
        if values.shape != (len(train_emb), len(target_emb)) or len(train_emb) < 5:
            raise DataContractError(f"NN-CIFT: values {values.shape} must be [labelled rows >= 5, targets] = "
                                    f"[{len(train_emb)}, {len(target_emb)}]")
        torch.manual_seed(cfg.seed)
        self._mean, self._std = float(values.mean()), max(float(values.std()), 1e-12)
        perm = np.random.default_rng(cfg.seed).permutation(len(train_emb))
        n_val = max(2, round(cfg.val_fraction * len(perm)))
        val, train = perm[:n_val], perm[n_val:]
        tr, tg = torch.as_tensor(train_emb, dtype=torch.float32), torch.as_tensor(target_emb, dtype=torch.float32)
        y = torch.as_tensor((values - self._mean) / self._std, dtype=torch.float32)
        self.net = InfluenceNetwork(tr.shape[1], cfg.hidden)
        self.val_spearman = _fit(self.net, _pairs(tr[train], tg), y[train].reshape(-1),
                                 (_pairs(tr[val], tg), y[val].reshape(-1).numpy()), cfg)
        return self

    def predict(self, train_emb: np.ndarray, target_emb: np.ndarray) -> np.ndarray:
        """Predicted ``[n, m]`` influence (in the oracle's units)."""
        if self.net is None:
            raise RuntimeError("fit the predictor first")
        tr, tg = torch.as_tensor(train_emb, dtype=torch.float32), torch.as_tensor(target_emb, dtype=torch.float32)
        with torch.no_grad():
            out = self.net(_pairs(tr, tg)).reshape(len(tr), len(tg)).numpy()
        return out * self._std + self._mean
