"""Hugging Face causal-LM adapter on a tiny random GPT-2 built locally (nothing downloaded)."""

from __future__ import annotations

import importlib
import math

import numpy as np
import polars as pl
import pytest
import torch

from curation.config import load
from curation.errors import MissingExtraError
from curation.plugins import get_plugin
from curation.provenance import membership as mb

TEXTS = ["hello world, this is a test", "def f(x):\n    return x + 1", "zz", "Ünïcödé text"]
ARCH = {"model_type": "gpt2", "vocab_size": 256, "n_positions": 64, "n_embd": 32, "n_layer": 2, "n_head": 2,
        "bos_token_id": 0, "eos_token_id": 0}


@pytest.fixture(scope="module")
def hf():
    pytest.importorskip("transformers")
    from curation.models.hf import HFCausalLMAdapter, HFCausalLMConfig

    adapter = HFCausalLMAdapter(load(HFCausalLMConfig, {"architecture": ARCH, "max_length": 32, "seed": 1}))
    model = adapter.build_model()
    frame = pl.DataFrame({"example_id": ["a", "b", "c", "d"], "text": TEXTS})
    return adapter, model, frame


def test_registered_and_loss_matches_transformers_own_loss(hf):
    adapter, model, frame = hf
    assert get_plugin("curation.model_adapters", "hf_causal_lm") is type(adapter)
    batch = adapter.collate(frame)
    ours = adapter.example_losses(model, batch).detach()
    for i, text in enumerate(TEXTS):
        ids = torch.tensor([list(text.encode("utf-8"))[:33]])
        with torch.no_grad():
            ref = model(input_ids=ids, labels=ids).loss  # transformers shifts the labels itself
        assert float(ours[i]) == pytest.approx(float(ref), abs=1e-5)
    assert adapter.tracked_modules(model) and all("transformer" in n or "lm_head" in n
                                                  for n in adapter.tracked_modules(model))


def test_every_membership_scorer_accepts_the_hf_adapter(hf):
    adapter, model, frame = hf
    ref_model = type(adapter)(load(type(adapter.config), {"architecture": ARCH, "max_length": 32, "seed": 2}))
    ref_model = ref_model.build_model()
    table = mb.all_scores(adapter, model, frame, k=0.5, reference_model=ref_model)
    assert set(table.columns) == {"example_id", *mb.SCORERS}
    assert table.select(pl.all().exclude("example_id").is_finite().all()).row(0) == (True,) * 5
    got = mb.min_k_plus_plus_score(adapter, model, frame, k=0.5)["score"].to_list()
    for i, text in enumerate(TEXTS):  # direct formula from the raw transformers logits
        raw = list(text.encode("utf-8"))[:33]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([raw[:-1]])).logits[0].double()
        logp = torch.log_softmax(logits, -1)
        mu = (logp.exp() * logp).sum(-1)
        sd = ((logp.exp() * logp**2).sum(-1) - mu**2).sqrt()
        z = sorted(((logp[torch.arange(len(raw) - 1), raw[1:]] - mu) / sd).tolist())
        n = max(1, int(0.5 * len(z)))
        assert got[i] == pytest.approx(sum(z[:n]) / n, abs=1e-6)
    loss = mb.loss_score(adapter, model, frame)["score"].to_numpy()
    np.testing.assert_allclose(loss, -adapter.example_losses(model, adapter.collate(frame)).detach().numpy(), atol=1e-5)


def test_lora_wraps_the_model_and_tracks_only_lora_layers():
    pytest.importorskip("peft")
    from curation.models.hf import HFCausalLMAdapter, HFCausalLMConfig

    adapter = HFCausalLMAdapter(HFCausalLMConfig(architecture=ARCH, max_length=32, lora_r=4, lora_target_modules=("c_attn",)))
    model = adapter.build_model()
    names = adapter.tracked_modules(model)
    assert names and all("lora_" in n for n in names)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    frame = pl.DataFrame({"example_id": [1], "text": ["some text"]})
    assert math.isfinite(float(mb.loss_score(adapter, model, frame)["score"][0]))


def test_missing_transformers_gives_pip_hint(monkeypatch):
    from curation.models import hf as hf_module

    real = importlib.import_module

    def fake(name, *args):
        if name == "transformers":
            raise ImportError("no transformers")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake)
    adapter = hf_module.HFCausalLMAdapter(hf_module.HFCausalLMConfig(architecture=ARCH))
    with pytest.raises(MissingExtraError, match=r"pip install 'curation\[hf\]'"):
        adapter.build_model()
