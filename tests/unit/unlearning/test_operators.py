"""Unlearning operators: exact retrain equals training on the retain rows; IAU is one full-batch Adam step on
retain - forget loss; gradient ascent raises the forget loss; checkpoints round-trip with metadata."""

import copy

import polars as pl
import torch

from curation.models.base import load_adapter_model
from curation.models.checkpoints import load_checkpoint
from curation.training import train
from curation.unlearning.operators import UnlearnConfig, save_unlearned, unlearn


def _mean_loss(setting, model, frame: pl.DataFrame) -> float:
    with torch.no_grad():
        return float(setting.adapter.example_losses(model, setting.adapter.collate(frame)).mean())


def test_exact_retrain_is_training_on_the_retain_rows(setting) -> None:
    small = setting.retain[:60]
    cfg = UnlearnConfig(method="retrain", train=setting.train_cfg.__class__(epochs=2, batch_size=16, seed=3))
    got = unlearn(setting.adapter, None, setting.forget, small, cfg).model
    want = train(setting.adapter, small, cfg.train, show_progress=False).model
    for a, b in zip(got.state_dict().values(), want.state_dict().values()):
        assert torch.equal(a, b)


def test_iau_is_one_full_batch_adam_step_on_retain_minus_forget(setting) -> None:
    cfg = UnlearnConfig(method="iau", steps=1, learning_rate=1e-3)
    got = unlearn(setting.adapter, setting.original, setting.forget, setting.retain, cfg).model
    model = copy.deepcopy(setting.original)
    ad = setting.adapter
    loss = ad.example_losses(model, ad.collate(setting.retain)).mean() - ad.example_losses(
        model, ad.collate(setting.forget)).mean()
    grads = torch.autograd.grad(loss, list(model.parameters()))
    for (name, p0), g, p1 in zip(model.named_parameters(), grads, got.parameters()):
        # first Adam step: m/(sqrt(v)+eps) with bias correction = g / (|g| + eps)
        expected = p0.detach() - 1e-3 * g / (g.abs() + 1e-8)
        assert torch.allclose(p1.detach(), expected, atol=1e-6), name
    assert not any(torch.equal(a, b) for a, b in zip(got.parameters(), setting.original.parameters()))


def test_gradient_ascent_raises_forget_loss_and_difference_protects_retain(setting) -> None:
    base_f = _mean_loss(setting, setting.original, setting.forget)
    ga = unlearn(setting.adapter, setting.original, setting.forget, setting.retain,
                 UnlearnConfig(method="gradient_ascent", steps=10, learning_rate=1e-3)).model
    gd = unlearn(setting.adapter, setting.original, setting.forget, setting.retain,
                 UnlearnConfig(method="gradient_difference", steps=10, learning_rate=1e-3)).model
    assert _mean_loss(setting, ga, setting.forget) > max(10 * base_f, base_f + 0.3)
    assert _mean_loss(setting, gd, setting.retain) < _mean_loss(setting, ga, setting.retain)
    assert _mean_loss(setting, setting.original, setting.forget) == base_f  # the original is untouched


def test_unlearned_checkpoint_round_trips_with_metadata(setting, tmp_path) -> None:
    cfg = UnlearnConfig(method="gradient_ascent", steps=2)
    result = unlearn(setting.adapter, setting.original, setting.forget, setting.retain, cfg)
    path = save_unlearned(tmp_path / "u.safetensors", setting.adapter, result, cfg, base="orig.safetensors")
    adapter, model, _ = load_adapter_model(path)
    _, info = load_checkpoint(path)
    assert adapter.name == "mlp" and info.extra["unlearning_method"] == "gradient_ascent"
    assert info.extra["n_forget"] == setting.forget.height and info.extra["base_checkpoint"] == "orig.safetensors"
    for a, b in zip(model.state_dict().values(), result.model.state_dict().values()):
        assert torch.equal(a, b)


def test_finetune_is_continued_training_on_the_retain_rows(setting) -> None:
    small = setting.retain[:60]
    cfg = UnlearnConfig(method="finetune", train=setting.train_cfg.__class__(epochs=2, batch_size=16, seed=3))
    before = copy.deepcopy(setting.original.state_dict())
    got = unlearn(setting.adapter, setting.original, setting.forget, small, cfg).model
    for a, b in zip(before.values(), setting.original.state_dict().values()):
        assert torch.equal(a, b)  # the original is untouched
    want = train(setting.adapter, small, cfg.train, model=copy.deepcopy(setting.original), show_progress=False).model
    for a, b in zip(got.state_dict().values(), want.state_dict().values()):
        assert torch.equal(a, b)
    assert not torch.equal(next(got.parameters()), next(setting.original.parameters()))
