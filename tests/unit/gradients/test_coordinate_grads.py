"""Coordinate-major Linear gradients and the blocked sjlt projection equal the torch.func per-example gradients
and the sparse matrix product they replace (ground truth: explicit per-example gradients, ``P^T g``)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from curation.gradients import FeaturizeConfig, ProjectionConfig, Projector, per_example_gradients
from curation.gradients.coordinate_grads import linear_gradient_blocks
from curation.gradients.featurize import featurize_shard, make_projector
from curation.models.classifiers import ClassifierConfig, MLPClassifierAdapter


def _mlp(dtype: str) -> tuple[MLPClassifierAdapter, nn.Module, dict]:
    adapter = MLPClassifierAdapter(ClassifierConfig(hidden=(16, 8), dtype=dtype, n_features=5, n_classes=3))
    model = adapter.build_model()
    batch = {"x": torch.randn(7, 5).to(adapter.torch_dtype), "y": torch.randint(0, 3, (7,))}
    return adapter, model, batch


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("block_coords", [1, 12, 10_000])
def test_blocks_equal_per_example_gradients(dtype: str, block_coords: int) -> None:
    adapter, model, batch = _mlp(dtype)
    modules = adapter.tracked_modules(model)
    expected = per_example_gradients(adapter, model, batch, modules=modules)
    blocks, values = linear_gradient_blocks(model, batch, adapter.example_losses, modules, block_coords=block_coords)
    got = torch.cat([block.clone() for _, block in blocks]).T
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(values, adapter.example_losses(model, batch).detach())


def test_sequence_inputs_sum_over_positions() -> None:
    """A Linear applied to ``[B, T, d]``: the per-example gradient sums the positions (einsum path)."""
    model = nn.Sequential(nn.Linear(4, 3)).double()
    batch = {"x": torch.randn(5, 6, 4, dtype=torch.float64)}

    def fn(m: nn.Module, b: dict) -> torch.Tensor:
        return (m(b["x"]) ** 2).sum(dim=(1, 2))

    blocks, _ = linear_gradient_blocks(model, batch, fn, ["0"], block_coords=8)
    got = torch.cat([block.clone() for _, block in blocks]).T
    for i in range(5):
        model.zero_grad()
        fn(model, {"x": batch["x"][i : i + 1]}).sum().backward()
        explicit = torch.cat([model[0].weight.grad.reshape(-1), model[0].bias.grad])
        torch.testing.assert_close(got[i], explicit)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_blocked_sjlt_equals_sparse_matrix_product(dtype: str) -> None:
    adapter, model, batch = _mlp(dtype)
    modules = adapter.tracked_modules(model)
    grads = per_example_gradients(adapter, model, batch, modules=modules)
    proj = Projector(grads.shape[1], ProjectionConfig(kind="sjlt", dim=16, seed=3))
    reference = (proj.sparse_matrix().to(grads.dtype) @ grads.T).T
    assert torch.equal(proj(grads), reference)  # one block: same summation order, bit-identical
    blocks, _ = linear_gradient_blocks(model, batch, adapter.example_losses, modules, block_coords=12)
    torch.testing.assert_close(proj.project_blocks(blocks, 7, wide=dtype == "float64"), reference)
    with pytest.raises(ValueError, match="cover rows"):
        proj.project_blocks([(3, grads.T)], 7)


def test_featurize_sjlt_on_linear_modules_uses_blocks_and_matches(tmp_path) -> None:
    import polars as pl

    adapter, model, _ = _mlp("float64")
    rows = pl.DataFrame({"example_id": list(range(9)), "features": torch.randn(9, 5).tolist(),
                         "label": [i % 3 for i in range(9)]})
    cfg = FeaturizeConfig(projection=ProjectionConfig(kind="sjlt", dim=32), shard_size=9, batch_size=4)
    projector = make_projector(adapter, model, cfg)
    feats, _ = featurize_shard(adapter, model, rows, projector, cfg)
    grads = per_example_gradients(adapter, model, adapter.collate(rows), modules=adapter.tracked_modules(model))
    torch.testing.assert_close(torch.from_numpy(feats).double(), projector(grads).float().double(),
                               rtol=1e-5, atol=1e-6)


class _Shared(nn.Module):
    """One Linear applied twice (shared weights): hooks cannot separate the two uses."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.tanh(self.lin(x)))


def test_shared_linear_falls_back_to_per_example_gradients() -> None:
    import polars as pl

    class Adapter(MLPClassifierAdapter):
        def build_model(self) -> nn.Module:
            return _Shared().double()

        def tracked_modules(self, model: nn.Module) -> list[str]:
            return ["lin"]

    adapter = Adapter(ClassifierConfig(dtype="float64", n_features=3, n_classes=3))
    model = adapter.build_model()
    rows = pl.DataFrame({"example_id": list(range(5)), "features": torch.randn(5, 3).tolist(),
                         "label": [i % 3 for i in range(5)]})
    cfg = FeaturizeConfig(projection=ProjectionConfig(kind="sjlt", dim=8), shard_size=5, batch_size=5)
    projector = make_projector(adapter, model, cfg)
    feats, _ = featurize_shard(adapter, model, rows, projector, cfg)
    grads = per_example_gradients(adapter, model, adapter.collate(rows), modules=["lin"])
    torch.testing.assert_close(torch.from_numpy(feats).double(), projector(grads).float().double())
