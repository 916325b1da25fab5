"""REMIND: residual memorisation from the *input* loss landscape (methods spec section 4).

Each example gets ``n_neighbors`` perturbed copies: for byte GPTs about ``replace_fraction`` of the bytes are
replaced by one of their ``top_k`` nearest bytes in the model's input-embedding space; for tabular models (whose
input already is the embedding) that fraction of the features receives Gaussian noise of scale ``noise_scale``.
Landscape features of the neighbour losses (level, spread, increments, slopes, volatility, curvature) feed a
logistic-regression classifier that is cross-validated on the labelled forget / retain / holdout pools. Forgotten
data that the model still "knows" sits in a differently shaped neighbourhood than unseen data, so a forget-vs-
holdout AUC above that of the retrained reference is evidence of residual memorisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from curation.errors import CurationError
from curation.models.base import Batch, ModelAdapter
from curation.progress import progress_bar

SPLITS = ("forget", "retain", "holdout")
FEATURES = (
    "original_loss", "mean_neighbor_loss", "max_neighbor_loss", "min_neighbor_loss", "loss_variance", "loss_std",
    "increment_variance", "mean_loss_increment", "max_loss_increment", "min_loss_increment", "mean_gradient",
    "max_gradient", "gradient_variance", "loss_volatility", "local_curvature",
)


@dataclass(frozen=True, kw_only=True)
class RemindConfig:
    """Neighbourhood and classifier settings (defaults follow the released REMIND scripts where known)."""

    n_neighbors: int = field(default=15, metadata={"help": "perturbed neighbours per example"})
    replace_fraction: float = field(default=0.3, metadata={"help": "fraction of tokens / features perturbed"})
    top_k: int = field(default=20, metadata={"help": "text: replacement drawn from the k nearest embeddings"})
    noise_scale: float = field(default=0.1, metadata={"help": "tabular: std of the Gaussian feature perturbation"})
    folds: int = field(default=5, metadata={"help": "cross-validation folds of the REMIND classifier"})
    seed: int = field(default=0, metadata={"help": "seed for neighbours and folds"})

    def __post_init__(self) -> None:
        if self.n_neighbors < 2 or not 0 < self.replace_fraction <= 1 or self.top_k < 1 or self.folds < 2:
            raise ValueError("n_neighbors >= 2, 0 < replace_fraction <= 1, top_k >= 1 and folds >= 2 are required")


def nearest_tokens(embedding: torch.Tensor, k: int) -> torch.Tensor:
    """``[V, k]`` ids of each token's ``k`` nearest other tokens (Euclidean) in the embedding matrix."""
    dist = torch.cdist(embedding, embedding)
    dist.fill_diagonal_(float("inf"))
    return dist.topk(k, largest=False).indices


def perturb(
    adapter: ModelAdapter, model: nn.Module, batch: Batch, cfg: RemindConfig, gen: torch.Generator
) -> tuple[Batch, torch.Tensor]:
    """One neighbour of every row of ``batch`` and its distance (text: fraction of bytes changed; tabular: L2)."""
    if adapter.kind == "causal_lm":
        table = nearest_tokens(adapter.input_embeddings(model).detach().float(), cfg.top_k)
        targets, mask = batch["targets"], batch["target_mask"]
        chosen = (torch.rand(targets.shape, generator=gen) < cfg.replace_fraction) & (mask > 0)
        pick = torch.randint(cfg.top_k, targets.shape, generator=gen)
        new_targets = torch.where(chosen, table[targets, pick], targets)
        full = torch.cat([batch["input_ids"][:, :1], new_targets], dim=1)
        changed = (new_targets != targets).float().sum(-1) / mask.sum(-1).clamp_min(1)
        return {**batch, "input_ids": full[:, :-1], "targets": new_targets}, changed
    if adapter.kind == "classifier":
        x = batch["x"]
        chosen = (torch.rand(x.shape, generator=gen) < cfg.replace_fraction).to(x.dtype)
        noise = torch.randn(x.shape, generator=gen).to(x.dtype) * cfg.noise_scale * chosen
        return {**batch, "x": x + noise}, noise.norm(dim=-1)
    raise CurationError(f"REMIND has no neighbourhood for adapter '{adapter.name}' (needs a causal_lm or classifier adapter)")


@torch.no_grad()
def neighbour_losses(
    adapter: ModelAdapter, model: nn.Module, frame: pl.DataFrame, cfg: RemindConfig, *, chunk: int = 256
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(L0 [n], L [n, K], d [n, K])``: original loss, neighbour losses and neighbour distances."""
    model.eval()
    gen = torch.Generator().manual_seed(cfg.seed)
    l0, lk, dk = [], [], []
    with progress_bar(total=frame.height, description="REMIND neighbours", enabled=frame.height > chunk) as advance:
        for start in range(0, frame.height, chunk):
            batch = adapter.collate(frame[start : start + chunk])
            l0.append(adapter.example_losses(model, batch).double().numpy())
            pairs = [perturb(adapter, model, batch, cfg, gen) for _ in range(cfg.n_neighbors)]
            lk.append(np.stack([adapter.example_losses(model, b).double().numpy() for b, _ in pairs], axis=1))
            dk.append(np.stack([d.double().numpy() for _, d in pairs], axis=1))
            advance(l0[-1].shape[0])
    return np.concatenate(l0), np.concatenate(lk), np.concatenate(dk)


def landscape_features(l0: np.ndarray, lk: np.ndarray, dk: np.ndarray) -> dict[str, np.ndarray]:
    """The REMIND feature set from neighbour losses (formulas: methods spec section 4.1 step 4)."""
    inc = lk - l0[:, None]
    d = np.maximum(dk, 1e-12)
    slope = inc / d
    return {
        "original_loss": l0,
        "mean_neighbor_loss": lk.mean(1), "max_neighbor_loss": lk.max(1), "min_neighbor_loss": lk.min(1),
        "loss_variance": lk.var(1), "loss_std": lk.std(1), "increment_variance": inc.var(1),
        "mean_loss_increment": inc.mean(1), "max_loss_increment": inc.max(1), "min_loss_increment": inc.min(1),
        "mean_gradient": slope.mean(1), "max_gradient": slope.max(1), "gradient_variance": slope.var(1),
        "loss_volatility": inc.std(1) / np.maximum(np.abs(inc).mean(1), 1e-12),
        "local_curvature": inc.mean(1) / np.maximum((d**2).mean(1), 1e-12),
    }


def remind_features(
    adapter: ModelAdapter, model: nn.Module, pools: dict[str, pl.DataFrame], cfg: RemindConfig
) -> pl.DataFrame:
    """``example_id, split, <features>`` for every row of the forget / retain / holdout pools."""
    frames = []
    for split in SPLITS:
        feats = landscape_features(*neighbour_losses(adapter, model, pools[split], cfg))
        frames.append(pl.DataFrame({"example_id": pools[split]["example_id"].cast(pl.String),
                                    "split": [split] * pools[split].height, **feats}))
    return pl.concat(frames)


def _cv_proba(x: np.ndarray, y: np.ndarray, cfg: RemindConfig) -> np.ndarray:
    folds = min(cfg.folds, int(np.bincount(y).min()))
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    cv = StratifiedKFold(n_splits=max(folds, 2), shuffle=True, random_state=cfg.seed)
    return cross_val_predict(clf, x, y, cv=cv, method="predict_proba")


def remind_metrics(features: pl.DataFrame, cfg: RemindConfig) -> dict[str, float]:
    """Cross-validated classifier AUCs: forget vs holdout (binary) and 3-class macro one-vs-rest."""
    x_all = np.nan_to_num(features.select(FEATURES).to_numpy(), posinf=1e6, neginf=-1e6)
    split = features["split"].to_numpy()
    y3 = np.array([SPLITS.index(s) for s in split])
    fh = (split == "forget") | (split == "holdout")
    y_bin = (split[fh] == "forget").astype(int)
    p_bin = _cv_proba(x_all[fh], y_bin, cfg)[:, 1]
    p3 = _cv_proba(x_all, y3, cfg)
    stats = features.group_by("split").agg(pl.col("loss_variance").mean())
    variance = dict(stats.iter_rows())
    return {
        "remind_auc_forget_holdout": float(roc_auc_score(y_bin, p_bin)),
        "remind_auc_3class": float(roc_auc_score(y3, p3, multi_class="ovr", average="macro")),
        **{f"remind_loss_variance_{s}": float(variance[s]) for s in SPLITS},
    }
