"""Palimpsestic provenance tests (Kuditipudi et al.; methods spec §2): does a model or a text derive from our run?

Language models remember what they saw late in training better than what they saw early. Our trainer shuffles
uniformly at random and records every example's ``position``, so under the null hypothesis "the suspect is
independent of our run" any statistic correlating the suspect with that order has an exactly known null
distribution (re-permute the order), whatever the data.

- ``query_test``: Spearman(position, suspect loss - reference loss) over training examples; expected negative.
  Optionally calibrated against a bank of independent null models scored with the same reference and order
  (``NullCalibration``): the exact p-value holds over the randomness of our order, while the bank's p-value
  holds for this one order and reference, which share structure with every model they are compared with.
- ``span_overlap_test`` (observational a): how many of the suspect text's character n-grams each training example
  contains, Spearman against position; expected positive.
- ``retrain_test`` (observational b): log-likelihood of the suspect text under the last phase retrained in the
  original order versus K reshuffled orders; z-score with normal and Student p-values, and the exact rank p-value.

Every p-value is one-sided in the direction derivation predicts; permutation p-values are
``(1 + #{j: phi_j as or more extreme than phi_0}) / (m + 1)``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy import stats
from torch import nn

from curation.errors import CurationError
from curation.models.base import ModelAdapter
from curation.progress import progress_bar
from curation.provenance.membership import loss_score, token_stats
from curation.provenance.retrain import OrderedTrainConfig, reshuffled, train_in_order


@dataclass(frozen=True)
class ExchangeableTest:
    """One value against values that are exchangeable with it under H0; larger = more evidence."""

    z: float  # (v_0 - mean(rest)) / std(rest)
    p_normal: float  # 1 - Phi(z)
    p_t: float  # Student prediction p-value: 1 - F_{t, k-1}(z * sqrt(k / (k + 1))), exact for normal values
    p_rank: float  # (1 + #{j: v_j >= v_0}) / (k + 1): exact under exchangeability; floor 1/(k+1)


def exchangeable_test(first: float, rest: np.ndarray) -> ExchangeableTest:
    """z, normal, Student and rank p-values of ``first`` against ``rest`` (at least two values)."""
    rest = np.asarray(rest, dtype=float)
    k = rest.size
    if k < 2:
        raise CurationError(f"need at least 2 comparison values for a z-score, got {k}")
    sd = float(rest.std(ddof=1))
    z = float((first - rest.mean()) / sd) if sd > 0 else 0.0
    p_t = float(stats.t.sf(z * np.sqrt(k / (k + 1)), k - 1))
    p_rank = (1 + int(np.sum(rest >= first))) / (k + 1)
    return ExchangeableTest(z, float(stats.norm.sf(z)), p_t, p_rank)


@dataclass(frozen=True)
class NullCalibration:
    """The suspect's rho against the rho of ``n`` independent null models, same order, reference and examples.

    Under H0 "the suspect is one more model like the bank's", the suspect's rho is exchangeable with theirs, so
    ``p_rank`` is exact for our one order and reference. Independent models and the reference share structure
    (which skills a model of this kind learns well); our order correlates with it by chance, which moves every
    model's rho alike. The bank measures that shift and spread; the exact p-value cannot.
    """

    null_statistics: tuple[float, ...]  # each null model's rho
    z: float  # (mean(null rho) - rho) / sd(null rho): large = evidence of derivation
    p_t: float
    p_rank: float

    def summary(self) -> dict[str, float]:
        rho = np.asarray(self.null_statistics)
        return {"null_z": self.z, "null_p_t": self.p_t, "null_p_rank": self.p_rank, "n_null_models": rho.size,
                "null_rho_mean": float(rho.mean()), "null_rho_sd": float(rho.std(ddof=1))}


@dataclass(frozen=True)
class CorrelationResult:
    """A rank-correlation test of a per-example quantity against training position."""

    statistic: float  # Spearman rho
    p_value: float  # scipy (t approximation), one-sided in the expected direction
    p_permutation: float  # exact permutation p-value (floor 1/(m+1))
    z_permutation: float  # rho standardised by the permutation sample, signed so that large = evidence
    n: int
    n_permutations: int
    frame: pl.DataFrame = field(repr=False)  # per-example values used (example_id, position, value columns)
    null: NullCalibration | None = None  # calibration against a bank of independent models, when given

    def summary(self) -> dict[str, float]:
        out = {
            "statistic": self.statistic, "p_value": self.p_value, "p_permutation": self.p_permutation,
            "z_permutation": self.z_permutation, "n": self.n, "n_permutations": self.n_permutations,
        }
        return {**out, **(self.null.summary() if self.null is not None else {})}


def check_positions(positions: pl.DataFrame, where: str = "positions") -> pl.DataFrame:
    """``example_id, position`` with unique ids and non-null positions, or a one-line ``CurationError``."""
    for col in ("example_id", "position"):
        if col not in positions.columns:
            raise CurationError(f"{where}: missing column '{col}'")
    if positions["position"].null_count():
        row = positions["position"].is_null().arg_true()[0]
        raise CurationError(f"{where}: column 'position' is null at row {row}")
    dup = ~positions["example_id"].is_first_distinct()
    if dup.any():
        row = dup.arg_true()[0]
        raise CurationError(
            f"{where}: column 'example_id' repeats at row {row} ({positions['example_id'][row]}); "
            "deduplicate repeated documents, their training position is ambiguous"
        )
    return positions.select("example_id", "position")


def rank_correlation_test(
    position: np.ndarray, value: np.ndarray, *, expect: str, n_permutations: int = 999, seed: int = 0
) -> tuple[float, float, float, float]:
    """Spearman rho of ``value`` against ``position``; ``expect`` is ``"less"`` or ``"greater"``.

    Returns ``(rho, scipy one-sided p, permutation p, permutation z)``. The permutation re-draws the order
    uniformly at random, which is exactly the null distribution under a uniformly shuffled training run.
    """
    if position.size < 3:
        raise CurationError(f"palimpsest: need at least 3 examples with a position, got {position.size}")
    res = stats.spearmanr(position, value, alternative=expect)
    rho = float(res.statistic)
    if not np.isfinite(rho):
        raise CurationError("palimpsest: the compared values are constant; the rank correlation is undefined")
    rank_pos = stats.rankdata(position)
    rank_val = stats.rankdata(value)
    rank_val = (rank_val - rank_val.mean()) / np.linalg.norm(rank_val - rank_val.mean())
    centred = rank_pos - rank_pos.mean()
    scale = np.linalg.norm(centred)
    rng = np.random.default_rng(seed)
    null = np.array([rng.permutation(centred) @ rank_val / scale for _ in range(n_permutations)])
    sign = -1.0 if expect == "less" else 1.0
    extreme = int(np.sum(sign * null >= sign * rho - 1e-12))
    p_perm = (1 + extreme) / (n_permutations + 1)
    z = float(sign * (rho - null.mean()) / null.std()) if null.std() > 0 else 0.0
    return rho, float(res.pvalue), p_perm, z


def query_test(
    positions: pl.DataFrame,
    suspect_loss: pl.DataFrame,
    reference_loss: pl.DataFrame | None = None,
    *,
    null_losses: Sequence[pl.DataFrame] = (),
    ensemble_reference: bool = False,
    n_permutations: int = 999,
    seed: int = 0,
) -> CorrelationResult:
    """Spearman(position, suspect loss - reference loss) over examples present in all frames; expected < 0.

    ``suspect_loss`` / ``reference_loss`` are ``example_id, loss`` frames (mean token NLL, same texts and
    tokenisation). Without a reference the raw suspect loss is used (needs far more examples). ``null_losses``
    (at least two, or none): the same for a bank of models independent of our run; each gets the same statistic
    on the same examples, and the suspect's rho is calibrated against theirs (``CorrelationResult.null``).

    ``ensemble_reference`` (needs the bank): the reference loss becomes the mean loss of the suspect, the
    reference model and every bank model, and the reference model joins the bank. A single reference's own
    per-example noise is in every ``suspect - reference`` difference; the mean of many models strips example
    difficulty with far less of it (benchmarks/provenance, demo scale: rho of our model -0.08 -> -0.12 with three
    models). Every model, the suspect included, is centred on the same mean (``loss_x - mean`` ranks as
    ``loss_x - mean of the others``), so under H0 "the suspect is one more model like the bank's" its rho stays
    exchangeable with the bank's and the rank p-value exact; the exact ``p_value`` stays valid over our order.
    Bank and reference must then be trained alike.
    """
    if len(null_losses) == 1:
        raise CurationError("palimpsest: a null bank needs at least 2 models, got 1")
    if ensemble_reference and not null_losses:
        raise CurationError("palimpsest: an ensemble reference needs a null bank (null_losses)")
    frame = check_positions(positions).join(suspect_loss.select("example_id", suspect_loss=pl.col("loss")),
                                            on="example_id", how="inner")
    for j, null in enumerate(null_losses):
        frame = frame.join(null.select("example_id", pl.col("loss").alias(f"null_loss_{j}")), on="example_id",
                           how="inner")
    if reference_loss is not None:
        frame = frame.join(reference_loss.select("example_id", reference_loss=pl.col("loss")),
                           on="example_id", how="inner")
    bank = [f"null_loss_{j}" for j in range(len(null_losses))]
    if ensemble_reference and reference_loss is not None:
        bank.append("reference_loss")  # the reference model is one more bank model
    if ensemble_reference:
        frame = frame.with_columns(ensemble_loss=pl.mean_horizontal("suspect_loss", *bank))
        base = pl.col("ensemble_loss")
    else:
        base = pl.col("reference_loss") if reference_loss is not None else pl.lit(0.0)
    frame = frame.with_columns(value=pl.col("suspect_loss") - base).sort("position")
    position = frame["position"].to_numpy()
    rho, p, p_perm, z = rank_correlation_test(position, frame["value"].to_numpy(), expect="less",
                                              n_permutations=n_permutations, seed=seed)
    null = None
    if null_losses:
        null_rho = [float(stats.spearmanr(position, frame.select(pl.col(col) - base).to_series()).statistic)
                    for col in bank]
        undefined = [j for j, r in enumerate(null_rho) if not np.isfinite(r)]
        if undefined:
            raise CurationError(f"palimpsest: null model {undefined[0]} gives constant values; its rank correlation "
                                "is undefined")
        test = exchangeable_test(-rho, -np.asarray(null_rho))
        null = NullCalibration(tuple(null_rho), test.z, test.p_t, test.p_rank)
        frame = frame.drop([f"null_loss_{j}" for j in range(len(null_losses))])
        if ensemble_reference and reference_loss is not None:  # the value's base, kept for the per-example tables
            frame = frame.drop("reference_loss").rename({"ensemble_loss": "reference_loss"})
        elif ensemble_reference:
            frame = frame.rename({"ensemble_loss": "reference_loss"})
    return CorrelationResult(rho, p, p_perm, z, frame.height, n_permutations, frame, null)


def example_losses(adapter: ModelAdapter, model: nn.Module, frame: pl.DataFrame, *, batch_size: int = 64) -> pl.DataFrame:
    """``example_id, loss``: mean token negative log-likelihood of every row."""
    return loss_score(adapter, model, frame, batch_size=batch_size).select("example_id", loss=-pl.col("score"))


def span_overlap_counts(train_texts: list[str], suspect_texts: list[str], *, n: int) -> np.ndarray:
    """For each training text, how many character ``n``-grams of the suspect texts it contains (with multiplicity
    over suspect offsets, credit split equally among the training texts sharing the n-gram)."""
    if n < 1:
        raise CurationError(f"span overlap: n={n} must be positive")
    index: dict[str, list[int]] = defaultdict(list)
    for i, text in enumerate(train_texts):
        for gram in {text[j : j + n] for j in range(len(text) - n + 1)}:
            index[gram].append(i)
    counts = np.zeros(len(train_texts))
    for text in suspect_texts:
        for j in range(len(text) - n + 1):
            owners = index.get(text[j : j + n])
            if owners:
                counts[owners] += 1.0 / len(owners)
    return counts


def span_overlap_test(
    train: pl.DataFrame,
    positions: pl.DataFrame,
    suspect_texts: list[str],
    *,
    n: int = 16,
    n_permutations: int = 999,
    seed: int = 0,
    allow_no_match: bool = False,
) -> CorrelationResult:
    """Observational test (a): Spearman(position, suspect n-gram matches per training example); expected > 0.

    Simplification of the paper's "longest match up to k tokens": one fixed span length ``n`` in characters.
    Needs far more suspect text than test (b) (hundreds of thousands of tokens in the paper). When no span
    matches, the correlation is undefined: an error, or with ``allow_no_match`` a result with rho 0 and p 1
    (no evidence against independence).
    """
    if "text" not in train.columns:
        raise CurationError("span overlap: training table has no 'text' column")
    frame = check_positions(positions).join(train.select("example_id", "text"), on="example_id", how="inner")
    frame = frame.sort("position")
    counts = span_overlap_counts(frame["text"].to_list(), suspect_texts, n=n)
    if not counts.any() and allow_no_match:
        return CorrelationResult(0.0, 1.0, 1.0, 0.0, frame.height, n_permutations,
                                 frame.drop("text").with_columns(value=pl.Series(counts)))
    if not counts.any():
        raise CurationError(f"span overlap: no {n}-character span of the suspect text occurs in the training data")
    frame = frame.drop("text").with_columns(value=pl.Series(counts))
    rho, p, p_perm, z = rank_correlation_test(
        frame["position"].to_numpy(), counts, expect="greater", n_permutations=n_permutations, seed=seed
    )
    return CorrelationResult(rho, p, p_perm, z, frame.height, n_permutations, frame)


@dataclass(frozen=True)
class RetrainResult:
    """Observational test (b): a per-model statistic of the suspect text, original-order model vs K reshuffles."""

    original_loglik: float  # the statistic under the original-order retrain (total log-likelihood by default)
    reshuffled_loglik: list[float]  # the same under each reshuffled retrain
    z: float  # (L_0 - mean(L_1..K)) / std(L_1..K)
    p_normal: float  # 1 - Phi(z): the spec's normal approximation (anti-conservative for small K)
    p_t: float  # Student prediction p-value: 1 - F_{t, K-1}(z * sqrt(K / (K + 1))), exact for normal L
    p_rank: float  # (1 + #{j: L_j >= L_0}) / (K + 1): exact under exchangeability; floor 1/(K+1)
    n_tokens: int
    statistic: str = "total"

    def reported(self, kind: str) -> float:
        """The p-value of ``kind`` (``normal``, ``t`` or ``rank``)."""
        return {"normal": self.p_normal, "t": self.p_t, "rank": self.p_rank}[kind]

    def summary(self) -> dict[str, float]:
        return {"statistic": self.z, "p_value": self.p_normal, "p_t": self.p_t, "p_rank": self.p_rank,
                "n_tokens": self.n_tokens, "n_reshuffles": len(self.reshuffled_loglik)}


def sequence_logliks(adapter: ModelAdapter, model: nn.Module, texts: pl.DataFrame) -> tuple[np.ndarray, int]:
    """Per-row sum of token log-probabilities and the number of tokens scored.

    With a ``prompt`` column each row is scored as ``prompt + text`` and only the completion's tokens count
    (the prompt is context, as in the paper's setting of 32-token completions of 20-token prompts).
    """
    if "prompt" not in texts.columns:
        st = token_stats(adapter, model, texts)
        return np.array([a.sum() for a in st.logprobs]), int(sum(a.size for a in st.logprobs))
    joined = texts.with_columns(text=pl.col("prompt") + pl.col("text"))
    st = token_stats(adapter, model, joined)
    prompt_batch = adapter.collate(texts.select("example_id", text=pl.col("prompt")))
    skip = prompt_batch["target_mask"].sum(1).long().tolist()  # prompt of P tokens = P - 1 targets; completion follows
    kept = [a[k:] for a, k in zip(st.logprobs, skip, strict=True)]
    return np.array([a.sum() for a in kept]), int(sum(a.size for a in kept))


def total_loglik(adapter: ModelAdapter, model: nn.Module, texts: pl.DataFrame) -> tuple[float, int]:
    """Sum of the completion log-probabilities of all rows and the number of tokens scored."""
    per_row, n_tokens = sequence_logliks(adapter, model, texts)
    return float(per_row.sum()), n_tokens


@dataclass(frozen=True)
class SimulatedDerivation:
    """Training that every retrained model gets before it scores the texts: ``rows`` (``example_id, text``; text
    of the kind a derivation might train on, not the suspect's own) in row order with ``cfg``.

    A suspect model derived from ours has had further training, which moves it away from every retrained model
    alike and dilutes how much likelier its text is under the original order. Giving every retrained model a
    derivation of its own brings them back into the suspect's neighbourhood. The same training for every model
    keeps them exchangeable under H0, so the test stays exact.
    """

    rows: pl.DataFrame
    cfg: OrderedTrainConfig


def retrain_logliks(
    adapter: ModelAdapter,
    boundary_model: nn.Module,
    phase: pl.DataFrame,
    texts: list[pl.DataFrame],
    cfg: OrderedTrainConfig,
    *,
    n_reshuffles: int,
    seed: int = 0,
    derivation: SimulatedDerivation | None = None,
    finetune_on_test: bool = False,
) -> tuple[list[np.ndarray], list[int]]:
    """Retrain ``phase`` from ``boundary_model`` in the original row order (model 0) and ``n_reshuffles``
    seeded reshuffles (models 1..K), with the same procedure; score every text under every model.

    With ``derivation`` every retrained model is first trained on its rows (see ``SimulatedDerivation``). With
    ``finetune_on_test`` (the authors' variant) each retrained model is then trained one epoch on the text it
    scores (prompt + completion, in row order, with ``cfg``). Returns one ``[K + 1, rows]`` array of per-row
    log-likelihoods per text, and each text's token count. Models are scored as they are trained and then
    dropped, so K can be large.
    """
    if n_reshuffles < 2:
        raise CurationError(f"retrain test: n_reshuffles={n_reshuffles} must be at least 2")
    out = [np.empty((n_reshuffles + 1, t.height)) for t in texts]
    n_tokens = [0] * len(texts)
    with progress_bar(total=n_reshuffles + 1, description="retraining last phase") as advance:
        for j in range(n_reshuffles + 1):
            rows = phase if j == 0 else reshuffled(phase, seed + j)
            model = train_in_order(adapter, boundary_model, rows, cfg)
            if derivation is not None:
                model = train_in_order(adapter, model, derivation.rows, derivation.cfg, copy_model=False)
            for i, frame in enumerate(texts):
                scorer = train_in_order(adapter, model, as_training_rows(frame), cfg) if finetune_on_test else model
                out[i][j], n_tokens[i] = sequence_logliks(adapter, scorer, frame)
            advance(1)
    return out, n_tokens


def as_training_rows(texts: pl.DataFrame) -> pl.DataFrame:
    """Suspect text rows as training rows: ``prompt + text`` when there is a prompt."""
    if "prompt" in texts.columns:
        return texts.select("example_id", text=pl.col("prompt") + pl.col("text"))
    return texts.select("example_id", "text")


def normal_scores(values: np.ndarray) -> np.ndarray:
    """Column-wise rank-based normal scores across models (rows): ``Phi^-1(rank / (M + 1))``."""
    return stats.norm.ppf(stats.rankdata(values, axis=0) / (values.shape[0] + 1))


def model_statistic(seq_ll: np.ndarray, *, aggregate: str = "total", control: np.ndarray | None = None) -> np.ndarray:
    """One value per model (row of ``seq_ll``, ``[models, rows]``); larger = the text is likelier under it.

    ``total`` sums the rows (the spec); ``normal_scores`` replaces each row's log-likelihoods by their normal
    scores across models before summing, so every sample weighs the same and one heavy-tailed sample cannot
    dominate. ``control`` (``[models, rows']``: log-likelihoods of text that does not depend on our order)
    is aggregated the same way and regressed out by least squares over all models, removing how good each
    retrained model is in general. Every step treats the models symmetrically, so under H0 the original-order
    value stays exchangeable with the reshuffled ones and the rank p-value stays exact.
    """
    if aggregate not in ("total", "normal_scores"):
        raise CurationError(f"retrain test: aggregate={aggregate!r} must be 'total' or 'normal_scores'")
    agg = (lambda a: normal_scores(a).sum(1)) if aggregate == "normal_scores" else (lambda a: a.sum(1))
    values = agg(seq_ll)
    if control is None:
        return values
    design = np.c_[np.ones(values.size), agg(control)]
    coef, *_ = np.linalg.lstsq(design, values, rcond=None)
    return values - design @ coef


def order_test(values: np.ndarray, n_tokens: int, statistic: str = "total") -> RetrainResult:
    """z, normal, Student and rank p-values of ``values[0]`` (original order) against ``values[1:]``."""
    rest = np.asarray(values[1:], dtype=float)
    t = exchangeable_test(float(values[0]), rest)
    return RetrainResult(float(values[0]), rest.tolist(), t.z, t.p_normal, t.p_t, t.p_rank, n_tokens, statistic)


def retrain_test(
    adapter: ModelAdapter,
    boundary_model: nn.Module,
    phase: pl.DataFrame,
    suspect_texts: pl.DataFrame,
    cfg: OrderedTrainConfig,
    *,
    n_reshuffles: int = 9,
    seed: int = 0,
    aggregate: str = "total",
    control_texts: pl.DataFrame | None = None,
    derivation: SimulatedDerivation | None = None,
    finetune_on_test: bool = False,
) -> RetrainResult:
    """Retrain ``phase`` (rows in original order) from ``boundary_model`` once as is and ``n_reshuffles`` times
    reshuffled, with the same procedure; compare the suspect texts' log-likelihood (``example_id, text`` and
    optionally ``prompt``: then only the completion ``text`` is scored, in the prompt's context)."""
    frames = [suspect_texts] + ([control_texts] if control_texts is not None else [])
    lls, n_tokens = retrain_logliks(adapter, boundary_model, phase, frames, cfg, n_reshuffles=n_reshuffles, seed=seed,
                                    derivation=derivation, finetune_on_test=finetune_on_test)
    control = lls[1] if control_texts is not None else None
    values = model_statistic(lls[0], aggregate=aggregate, control=control)
    name = aggregate + ("+control" if control is not None else "")
    return order_test(values, n_tokens[0], name)


def last_phase(frame: pl.DataFrame, positions: pl.DataFrame, fraction: float) -> pl.DataFrame:
    """Rows trained in the last ``fraction`` of the run, in their original order."""
    if not 0.0 < fraction < 1.0:
        raise CurationError(f"retrain test: fraction={fraction} must lie in (0, 1)")
    ordered = check_positions(positions).join(frame, on="example_id", how="inner").sort("position")
    start = round((1.0 - fraction) * ordered.height)
    return ordered.slice(start).drop("position")
