"""Kronecker-factored (LoGra-style) projection: features equal ``(P_out (x) P_in)`` applied to the explicit
per-example gradients (MLP and byte GPT over tokens, float64), inner products are unbiased and sharpen with k, the
same seed gives the same bytes in another process, the store resumes, and TracIn/TRAK consume the features."""

import subprocess
import sys
import textwrap

import numpy as np
import polars as pl
import pytest
import torch

from curation.attribution.base import CheckpointModel, ScoringContext
from curation.attribution.tracin import TracInConfig, TracInScorer, tracin_matrix, tracin_self
from curation.attribution.trak import TRAKConfig, TRAKScorer
from curation.errors import CurationError, StoreMismatchError
from curation.gradients import FeaturizeConfig, ProjectionConfig, Projector, featurize, per_example_gradients
from curation.gradients.featurize import output_function
from curation.gradients.kronecker import KroneckerProjector, kronecker_dims
from curation.gradients.per_example import tracked_parameters
from curation.gradients.store import GradientStore
from curation.models.classifiers import ClassifierConfig, MLPClassifierAdapter
from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig
from tests.unit.gradients.test_featurize import _mlp_checkpoints, interrupt_store_writes


def _kron(dim: int, seed: int = 0) -> ProjectionConfig:
    return ProjectionConfig(kind="kronecker", dim=dim, seed=seed)


def _table(n: int, n_features: int, n_classes: int, seed: int = 0, prefix: str = "e") -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({"example_id": [f"{prefix}{i}" for i in range(n)],
                         "features": rng.random((n, n_features)).tolist(), "label": rng.integers(0, n_classes, n)})


def _mlp(n_features: int = 12, hidden: tuple[int, ...] = (10,), n_classes: int = 4, seed: int = 0,
         dtype: str = "float64") -> tuple[MLPClassifierAdapter, torch.nn.Module]:
    adapter = MLPClassifierAdapter(ClassifierConfig(n_features=n_features, n_classes=n_classes, hidden=hidden,
                                                    dtype=dtype))
    torch.manual_seed(seed)
    return adapter, adapter.build_model().eval()


def _gpt() -> tuple[ByteGPTAdapter, torch.nn.Module, pl.DataFrame]:
    adapter = ByteGPTAdapter(ByteGPTConfig(n_layer=1, n_head=2, d_model=16, block_size=12))
    torch.manual_seed(0)
    model = adapter.build_model().double().eval()
    frame = pl.DataFrame({"example_id": [1, 2, 3, 4], "text": ["hello world", "def f(x):", "MIT", "é ok"]})
    return adapter, model, frame


def explicit_projection(proj: KroneckerProjector, model: torch.nn.Module, grads: torch.Tensor) -> torch.Tensor:
    """``(P_out (x) P_in) vec([dW | db])`` per layer, from flattened explicit per-example gradients."""
    params = tracked_parameters(model, [layer.name for layer in proj.layers])
    pieces, offset = {}, 0
    for name, p in params.items():
        pieces[name] = grads[:, offset : offset + p.numel()].reshape(grads.shape[0], *p.shape)
        offset += p.numel()
    assert offset == grads.shape[1]
    out = []
    for layer in proj.layers:
        g = pieces[f"{layer.name}.weight"]
        if layer.bias:
            g = torch.cat([g, pieces[f"{layer.name}.bias"][..., None]], dim=-1)
        p_out = torch.eye(layer.d_out, dtype=torch.float64) if layer.p_out is None else layer.p_out
        p_in = torch.eye(layer.d_in, dtype=torch.float64) if layer.p_in is None else layer.p_in
        out.append(g.reshape(g.shape[0], -1) @ torch.kron(p_out, p_in).T)
    return torch.cat(out, dim=1)


@pytest.mark.parametrize("target", ["loss", "measurement", "margin"])
def test_mlp_features_equal_kronecker_projection_of_explicit_gradients(target: str) -> None:
    adapter, model = _mlp()
    batch = adapter.collate(_table(7, 12, 4))
    modules = adapter.tracked_modules(model)
    proj = KroneckerProjector(model, modules, _kron(40, seed=3))
    assert [(la.d_in, la.d_out, la.k_in, la.k_out) for la in proj.layers] == [(13, 10, 5, 4), (11, 4, 5, 4)]
    assert all(la.p_in is not None for la in proj.layers) and proj.layers[0].p_out is not None
    for la in proj.layers:  # P_in = diag(R, 1): the bias input is kept exactly
        assert la.p_in[-1, -1] == 1 and not la.p_in[-1, :-1].any() and not la.p_in[:-1, -1].any()
    fn = output_function(adapter, target)
    feats, values = proj.features(model, batch, fn)
    grads = per_example_gradients(adapter, model, batch, modules=modules, target=fn).detach()
    expected = explicit_projection(proj, model, grads)
    assert feats.dtype == torch.float64 and feats.shape == (7, proj.dim) == expected.shape
    torch.testing.assert_close(feats, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))
    with torch.no_grad():
        torch.testing.assert_close(values, fn(model, batch))


def test_gpt_features_sum_over_tokens_and_handle_missing_bias() -> None:
    adapter, model, frame = _gpt()
    batch = adapter.collate(frame)
    modules = adapter.tracked_modules(model)  # qkv, proj, fc, fc_out (with bias), head (no bias)
    proj = KroneckerProjector(model, modules, _kron(400, seed=1))
    head = proj.layers[-1]
    assert head.name == "head" and not head.bias and head.d_in == 16 and proj.layers[0].bias
    fn = output_function(adapter, "measurement")
    feats, _ = proj.features(model, batch, fn)
    grads = per_example_gradients(adapter, model, batch, modules=modules, target=fn).detach()
    expected = explicit_projection(proj, model, grads)
    torch.testing.assert_close(feats, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


def test_gpt_featurize_store_uses_kronecker_path(tmp_path) -> None:
    adapter, model, frame = _gpt()
    model = model.float()
    modules = ("blocks.0.fc", "blocks.0.fc_out", "head")
    cfg = FeaturizeConfig(projection=_kron(300, seed=2), shard_size=3, batch_size=2, modules=modules)
    store = featurize(adapter, {"a": model}, frame, str(tmp_path), cfg, show_progress=False)
    proj = KroneckerProjector(model, modules, cfg.projection)
    assert store.dim == proj.dim == 3 * 100
    grads = per_example_gradients(adapter, model, adapter.collate(frame), modules=modules).detach().double()
    expected = explicit_projection(proj, model.double(), grads)
    np.testing.assert_allclose(store.grads("a"), expected.numpy(), rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


def _exact_pair(adapter, model) -> tuple[torch.Tensor, torch.Tensor]:
    batch = adapter.collate(_table(2, 100, 10, seed=4))
    return batch, per_example_gradients(adapter, model, batch).detach()


def test_inner_products_unbiased_and_error_shrinks_with_k() -> None:
    adapter, model = _mlp(n_features=100, hidden=(80,), n_classes=10)
    batch, grads = _exact_pair(adapter, model)
    x, y = grads[0], grads[1]
    true, scale = float(x @ y), float(x.norm() * y.norm())
    fn = adapter.example_losses
    errors, dots, norms = {}, [], []
    for dim in (32, 4608):  # per layer k_out x k_in: 4x4 and 4x4 | 48x48 and 10x81 (exact)
        rel = []
        for seed in range(60):
            f, _ = KroneckerProjector(model, adapter.tracked_modules(model), _kron(dim, seed)).features(model, batch, fn)
            dot = float(f[0] @ f[1])
            rel.append(abs(dot - true) / scale)
            if dim == 32:
                dots.append(dot)
                norms.append(float(f[0] @ f[0]) / float(x @ x))
        errors[dim] = float(np.median(rel))
    dots = np.array(dots)
    assert abs(dots.mean() - true) < 4 * dots.std(ddof=1) / np.sqrt(len(dots)), (dots.mean(), true)
    assert abs(np.mean(norms) - 1) < 4 * np.std(norms, ddof=1) / np.sqrt(len(norms))
    assert errors[4608] < 0.4 * errors[32], errors  # JL: error ~ 1/sqrt(k) per factor
    assert errors[4608] < 0.08, errors


def test_width_rule() -> None:
    assert kronecker_dims(2001, 512, 2048) == (45, 45)
    assert kronecker_dims(513, 20, 2048) == (102, 20)
    assert kronecker_dims(5, 3, 1000) == (5, 3)
    adapter, model = _mlp(n_features=8, hidden=(16,), n_classes=3)
    full = KroneckerProjector(model, adapter.tracked_modules(model), _kron(512))
    assert all(la.p_in is None and la.p_out is None for la in full.layers)  # k = d on both sides: exact
    assert full.dim == sum(p.numel() for p in model.parameters())


DETERMINISM_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np, polars as pl, torch
    from curation.gradients import ProjectionConfig
    from curation.gradients.kronecker import KroneckerProjector
    from curation.models.classifiers import ClassifierConfig, MLPClassifierAdapter
    adapter = MLPClassifierAdapter(ClassifierConfig(n_features=12, n_classes=4, hidden=(10,)))
    torch.manual_seed(0)
    model = adapter.build_model().eval()
    rng = np.random.default_rng(0)
    frame = pl.DataFrame({"example_id": [f"e{i}" for i in range(7)], "features": rng.random((7, 12)).tolist(),
                          "label": rng.integers(0, 4, 7)})
    proj = KroneckerProjector(model, adapter.tracked_modules(model), ProjectionConfig(kind="kronecker", dim=40, seed=9))
    feats, _ = proj.features(model, adapter.collate(frame), adapter.example_losses)
    np.save(sys.argv[1], feats.numpy())
""")


def test_same_seed_same_features_across_calls_and_processes(tmp_path) -> None:
    adapter, model = _mlp(dtype="float32")
    batch = adapter.collate(_table(7, 12, 4))
    modules = adapter.tracked_modules(model)
    first, _ = KroneckerProjector(model, modules, _kron(40, 9)).features(model, batch, adapter.example_losses)
    again, _ = KroneckerProjector(model, modules, _kron(40, 9)).features(model, batch, adapter.example_losses)
    other, _ = KroneckerProjector(model, modules, _kron(40, 10)).features(model, batch, adapter.example_losses)
    assert torch.equal(first, again) and not torch.allclose(first, other)
    out = tmp_path / "feats.npy"
    subprocess.run([sys.executable, "-c", DETERMINISM_SCRIPT, str(out)], check=True, capture_output=True)
    assert np.load(out).tobytes() == first.numpy().tobytes()


def test_non_linear_module_and_dense_projector_are_refused() -> None:
    adapter, model, _ = _gpt()
    with pytest.raises(CurationError, match=r"module 'blocks.0.ln1'.*nn.Linear modules only \(LayerNorm\)"):
        KroneckerProjector(model, ["blocks.0.fc", "blocks.0.ln1"], _kron(64))
    with pytest.raises(CurationError, match="at least 2 per tracked layer"):
        KroneckerProjector(model, adapter.tracked_modules(model), _kron(9))
    with pytest.raises(ValueError, match="kronecker"):
        Projector(100, _kron(16))
    cfg = FeaturizeConfig(projection=_kron(64), modules=("blocks.0.ln1",))
    with pytest.raises(CurationError, match="blocks.0.ln1"):
        featurize(adapter, {"a": model}, pl.DataFrame({"example_id": [1], "text": ["x"]}), "unused", cfg)


CFG = FeaturizeConfig(projection=_kron(48, seed=5), shard_size=16, batch_size=5)


def test_store_round_trip_and_resume(tmp_path, monkeypatch) -> None:
    adapter, models = _mlp_checkpoints()
    frame = _table(70, 8, 3)
    full = featurize(adapter, models, frame, str(tmp_path / "full"), CFG, show_progress=False)
    assert full.metadata["projection"]["kind"] == "kronecker" and full.dim == 24 + 24
    for cid, model in models.items():
        feats, values = KroneckerProjector(model, adapter.tracked_modules(model), CFG.projection).features(
            model, adapter.collate(frame), adapter.example_losses)
        np.testing.assert_allclose(full.grads(cid), feats.numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(full.values(cid), values.numpy(), rtol=1e-6)

    original = GradientStore.write
    interrupt_store_writes(monkeypatch, at=7)
    with pytest.raises(KeyboardInterrupt):
        featurize(adapter, models, frame, str(tmp_path / "resumed"), CFG, show_progress=False)
    monkeypatch.setattr(GradientStore, "write", original)
    written = []
    monkeypatch.setattr(GradientStore, "write", lambda self, c, s, *a: (written.append((c, s)), original(self, c, s, *a)))
    resumed = featurize(adapter, models, frame, str(tmp_path / "resumed"), CFG, show_progress=False)
    assert written == [("1", 16), ("1", 32), ("1", 48), ("1", 64)]
    for cid in models:
        assert resumed.grads(cid).tobytes() == full.grads(cid).tobytes()
        assert resumed.values(cid).tobytes() == full.values(cid).tobytes()
    other = FeaturizeConfig(projection=_kron(64, seed=5), shard_size=16, batch_size=5)
    with pytest.raises(StoreMismatchError, match="dim|projection"):
        featurize(adapter, models, frame, str(tmp_path / "full"), other, show_progress=False)


def _context() -> ScoringContext:
    adapter, models = _mlp_checkpoints()
    checkpoints = tuple(CheckpointModel(model=m, learning_rate=lr) for m, lr in zip(models.values(), (0.3, 0.1)))
    return ScoringContext(adapter=adapter, checkpoints=checkpoints, train=_table(40, 8, 3, seed=1, prefix="t"),
                          queries=_table(6, 8, 3, seed=2, prefix="q"), batch_size=8)


def test_tracin_with_kronecker_features() -> None:
    ctx = _context()
    modules = ctx.tracked()
    lrs = [c.learning_rate for c in ctx.checkpoints]
    cfg = _kron(64, seed=1)
    result = TracInScorer(TracInConfig(normalize="none", projection=cfg)).score(ctx)
    train, queries = [], []
    for ck in ctx.checkpoints:
        proj = KroneckerProjector(ck.model, modules, cfg)
        train.append(proj.features(ck.model, ctx.adapter.collate(ctx.train), ctx.adapter.example_losses)[0].numpy())
        queries.append(proj.features(ck.model, ctx.adapter.collate(ctx.queries), ctx.adapter.measurement)[0].numpy())
    np.testing.assert_allclose(result.matrix, tracin_matrix(train, queries, lrs), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(result.self_influence, tracin_self(train, lrs), rtol=1e-5)
    # at full width both factors are the identity: exactly TracIn on exact gradients (up to a permutation)
    exact = TracInScorer(TracInConfig(normalize="none")).score(ctx)
    full = TracInScorer(TracInConfig(normalize="none", projection=_kron(512))).score(ctx)
    np.testing.assert_allclose(full.matrix, exact.matrix, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(full.self_influence, exact.self_influence, rtol=1e-4)
    sketched = TracInScorer(TracInConfig(normalize="none", projection=_kron(160, seed=1))).score(ctx)
    assert np.corrcoef(sketched.matrix.ravel(), exact.matrix.ravel())[0, 1] > 0.98
    assert np.corrcoef(sketched.self_influence, exact.self_influence)[0, 1] > 0.9


def test_trak_with_kronecker_features_at_full_width_equals_exact() -> None:
    ctx = _context()
    exact = TRAKScorer(TRAKConfig(projection=ProjectionConfig(kind="identity"), damping=1e-3)).score(ctx)
    ours = TRAKScorer(TRAKConfig(projection=_kron(512), damping=1e-3)).score(ctx)
    assert ours.extras["output"] == "margin"
    np.testing.assert_allclose(ours.matrix, exact.matrix, rtol=1e-3, atol=1e-4 * np.abs(exact.matrix).max())
    sketched = TRAKScorer(TRAKConfig(projection=_kron(64), damping=1e-3)).score(ctx)
    assert sketched.matrix.shape == (40, 6) and np.isfinite(sketched.matrix).all()
