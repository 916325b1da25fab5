"""Per-example gradients of a Hugging Face causal LM (what LESS/GIST features need on HF models): transformers'
attention-mask code cannot be vmapped, so ``per_example_gradients`` falls back to one example at a time; the
result must equal plain autograd on each example alone, padding included."""

from __future__ import annotations

import polars as pl
import pytest
import torch

pytest.importorskip("transformers")

from curation.gradients.per_example import per_example_gradients, tracked_parameters


def test_hf_per_example_gradients_equal_autograd_per_example() -> None:
    from curation.models.hf import HFCausalLMAdapter, HFCausalLMConfig

    adapter = HFCausalLMAdapter(HFCausalLMConfig(  # the tiny config of tests/unit/models/test_hf_adapter.py
        architecture={"model_type": "gpt2", "n_layer": 2, "n_head": 2, "n_embd": 32, "vocab_size": 256,
                      "n_positions": 64}, max_length=32))
    torch.manual_seed(0)
    model = adapter.build_model()
    batch = adapter.collate(pl.DataFrame({"text": ["short", "a somewhat longer line of text", "mid length"]}))
    assert batch["attention_mask"].min() == 0  # padded rows: the mask reaches the model

    grads = per_example_gradients(adapter, model, batch)

    modules = adapter.tracked_modules(model)
    live = dict(model.named_parameters())
    names = list(tracked_parameters(model, modules))
    expected = []
    for i in range(3):
        one = {k: v[i:i + 1] for k, v in batch.items()}
        parts = torch.autograd.grad(adapter.example_losses(model, one)[0], [live[n] for n in names])
        expected.append(torch.cat([p.reshape(-1) for p in parts]))
    torch.testing.assert_close(grads, torch.stack(expected), rtol=1e-5, atol=1e-6)
