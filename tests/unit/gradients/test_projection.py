"""Random projections: unbiased inner products (seeded ensemble), determinism, chunking, identity."""

import numpy as np
import pytest
import torch

from curation.gradients import ProjectionConfig, Projector


def _pair(p: int = 3000) -> torch.Tensor:
    gen = torch.Generator().manual_seed(123)
    x = torch.randn(p, generator=gen, dtype=torch.float64)
    y = 0.6 * x + 0.8 * torch.randn(p, generator=gen, dtype=torch.float64)
    return torch.stack([x, y])


@pytest.mark.parametrize("kind", ["gaussian", "rademacher", "sjlt"])
def test_inner_products_preserved_in_expectation(kind: str) -> None:
    xy = _pair()
    true = float(xy[0] @ xy[1])
    norm = float(xy[0] @ xy[0])
    dots, sq = [], []
    for seed in range(150):
        z = Projector(xy.shape[1], ProjectionConfig(kind=kind, dim=128, seed=seed, chunk_rows=700))(xy)
        dots.append(float(z[0] @ z[1]))
        sq.append(float(z[0] @ z[0]))
    dots, sq = np.array(dots), np.array(sq)
    se = dots.std(ddof=1) / np.sqrt(len(dots))
    assert abs(dots.mean() - true) < 4 * se, (dots.mean(), true, se)
    assert abs(sq.mean() / norm - 1) < 0.03
    # one draw is already close (JL): relative error of the inner product at k=128 is about sqrt(2/k)
    assert np.median(np.abs(dots - true)) / np.sqrt(norm * float(xy[1] @ xy[1])) < 0.15


@pytest.mark.parametrize("kind", ["gaussian", "rademacher", "sjlt"])
def test_same_seed_same_matrix_and_cache_does_not_change_results(kind: str) -> None:
    x = torch.randn(4, 2500, generator=torch.Generator().manual_seed(1))
    a = Projector(2500, ProjectionConfig(kind=kind, dim=64, seed=7, chunk_rows=600))(x)
    b = Projector(2500, ProjectionConfig(kind=kind, dim=64, seed=7, chunk_rows=600, cache_mb=0))(x)
    c = Projector(2500, ProjectionConfig(kind=kind, dim=64, seed=8, chunk_rows=600))(x)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert a.shape == (4, 64) and a.dtype == torch.float32


def test_dense_projection_equals_explicit_matrix() -> None:
    proj = Projector(1000, ProjectionConfig(kind="gaussian", dim=32, seed=3, chunk_rows=300))
    full = torch.cat([proj.dense_chunk(i) for i in range(4)])
    assert full.shape == (1000, 32)
    assert abs(float(full.std()) * np.sqrt(32) - 1) < 0.05
    x = torch.randn(5, 1000, dtype=torch.float64)
    assert torch.allclose(proj(x), x @ full, atol=1e-10)


def test_sjlt_has_fixed_nonzeros_per_coordinate() -> None:
    proj = Projector(500, ProjectionConfig(kind="sjlt", dim=40, seed=0, sjlt_nnz=3))
    dense = proj.sparse_matrix().to_dense()  # [k, p]
    assert ((dense != 0).sum(0) == 3).all()
    assert torch.allclose(dense.abs()[dense != 0], torch.tensor(1 / np.sqrt(3), dtype=torch.float32))


def test_identity_and_width_check() -> None:
    x = torch.randn(2, 10)
    assert torch.equal(Projector(10, ProjectionConfig(kind="identity"))(x), x)
    with pytest.raises(ValueError, match="built for 10 parameters"):
        Projector(10, ProjectionConfig(kind="gaussian", dim=4))(torch.randn(2, 11))
