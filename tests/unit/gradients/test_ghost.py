"""Ghost norms equal the squared norms of explicit per-example gradients (MLP and GPT, Linear modules)."""

import polars as pl
import pytest
import torch

from curation.errors import CurationError
from curation.gradients import per_example_gradients
from curation.gradients.ghost import ghost_applicable, ghost_squared_norms
from curation.models.classifiers import ClassifierConfig, MLPClassifierAdapter
from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig


def test_mlp_ghost_norms_match_explicit_gradients() -> None:
    torch.manual_seed(0)
    adapter = MLPClassifierAdapter(ClassifierConfig(n_features=6, n_classes=4, hidden=(8, 5), dtype="float64"))
    model = adapter.build_model()
    frame = pl.DataFrame({"example_id": list(range(7)), "features": torch.randn(7, 6).tolist(),
                          "label": [0, 1, 2, 3, 0, 1, 2]})
    batch = adapter.collate(frame)
    modules = adapter.tracked_modules(model)
    assert ghost_applicable(model, modules)
    explicit = per_example_gradients(adapter, model, batch).pow(2).sum(1)
    ghost = ghost_squared_norms(model, batch, adapter.example_losses, modules)
    torch.testing.assert_close(ghost, explicit.double(), rtol=1e-10, atol=1e-12)


def test_gpt_ghost_norms_match_explicit_gradients() -> None:
    torch.manual_seed(0)
    adapter = ByteGPTAdapter(ByteGPTConfig(n_layer=1, n_head=2, d_model=16, block_size=12))
    model = adapter.build_model()
    batch = adapter.collate(pl.DataFrame({"example_id": ["a", "b", "c"], "text": ["hello world!", "abc", "x = 1"]}))
    modules = adapter.tracked_modules(model)
    explicit = per_example_gradients(adapter, model, batch).double().pow(2).sum(1)
    ghost = ghost_squared_norms(model, batch, adapter.example_losses, modules)
    torch.testing.assert_close(ghost, explicit, rtol=1e-4, atol=1e-8)


def test_not_applicable_to_non_linear_modules() -> None:
    model = ByteGPTAdapter(ByteGPTConfig(n_layer=1, n_head=2, d_model=16, block_size=8)).build_model()
    assert not ghost_applicable(model, ["tok", "blocks.0.qkv"])
    assert not ghost_applicable(model, [])
    with pytest.raises(CurationError, match="module 'missing': ghost norms supports nn.Linear modules only"):
        ghost_squared_norms(model, {}, lambda m, b: torch.zeros(1), ["missing"])


def test_tracin_self_influence_uses_ghost_path_and_matches_features() -> None:
    from curation.attribution.base import CheckpointModel, ScoringContext
    from curation.attribution.tracin import TracInConfig, TracInScorer, tracin_self
    from curation.gradients import ProjectionConfig

    torch.manual_seed(1)
    adapter = MLPClassifierAdapter(ClassifierConfig(n_features=5, n_classes=3, hidden=(6,), dtype="float64"))
    models = [adapter.build_model(), adapter.build_model()]
    frame = pl.DataFrame({"example_id": list(range(11)), "features": torch.randn(11, 5).tolist(),
                          "label": [i % 3 for i in range(11)]})
    ctx = ScoringContext(adapter=adapter, checkpoints=tuple(CheckpointModel(model=m, learning_rate=lr)
                                                            for m, lr in zip(models, (0.3, 0.1))),
                         train=frame, queries=frame.head(2), batch_size=4)
    fast = TracInScorer(TracInConfig(projection=ProjectionConfig(kind="identity"))).self_influence(ctx)
    grads = [per_example_gradients(adapter, m, adapter.collate(frame)).numpy() for m in models]
    torch.testing.assert_close(torch.from_numpy(fast), torch.from_numpy(tracin_self(grads, [0.3, 0.1])),
                               rtol=1e-10, atol=1e-12)
