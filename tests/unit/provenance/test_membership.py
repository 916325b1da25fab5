"""Membership scores against direct implementations of their formulas (methods spec §3.1)."""

from __future__ import annotations

import itertools
import math
import zlib

import numpy as np
import polars as pl
import pytest
import torch

from curation.errors import CurationError
from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig
from curation.plugins import get_plugin
from curation.provenance import membership as mb

TEXTS = [
    "def main():\n    return 0\n",
    "Permission is hereby granted, free of charge, to any person",
    "The quick brown fox jumps over the lazy dog.",
    "xy",  # one target byte only
    "Ünïcödé bytes — are scored per byte",
    "a much longer text " * 12,  # truncated at block_size
]


@pytest.fixture(scope="module")
def fixed():
    torch.manual_seed(3)
    adapter = ByteGPTAdapter(ByteGPTConfig(n_layer=1, n_head=2, d_model=32, block_size=48))
    model = adapter.build_model().eval()
    for p in model.parameters():  # larger weights than the init so the distributions are far from uniform
        p.data.mul_(3.0)
    frame = pl.DataFrame({"example_id": list(range(len(TEXTS))), "text": TEXTS})
    return adapter, model, frame


def direct_token_quantities(model, text: str, block: int) -> tuple[list[float], list[float], list[float]]:
    """lp_t, mu_t, sigma_t straight from the definitions, one position at a time, in float64 Python sums."""
    raw = list(text.encode("utf-8"))[: block + 1]
    logits = model(torch.tensor([raw[:-1]])).double()[0].tolist()
    lps, mus, sigmas = [], [], []
    for t, row in enumerate(logits):
        m = max(row)
        log_z = m + math.log(sum(math.exp(v - m) for v in row))
        logp = [v - log_z for v in row]
        p = [math.exp(v) for v in logp]
        mu = sum(pi * li for pi, li in zip(p, logp))
        second = sum(pi * li * li for pi, li in zip(p, logp))
        lps.append(logp[raw[t + 1]])
        mus.append(mu)
        sigmas.append(math.sqrt(second - mu * mu))
    return lps, mus, sigmas


def lowest_mean(values: list[float], k: float) -> float:
    n = max(1, int(k * len(values)))
    return sum(sorted(values)[:n]) / n


@pytest.mark.parametrize("k", [0.05, 0.2, 0.5, 1.0])
def test_min_k_and_min_k_plus_plus_equal_direct_formulas(fixed, k):
    adapter, model, frame = fixed
    got_mink = mb.min_k_score(adapter, model, frame, k=k)["score"].to_list()
    got_pp = mb.min_k_plus_plus_score(adapter, model, frame, k=k)["score"].to_list()
    for i, text in enumerate(TEXTS):
        lps, mus, sigmas = direct_token_quantities(model, text, adapter.config.block_size)
        assert got_mink[i] == pytest.approx(lowest_mean(lps, k), abs=1e-6)
        z = [(lp - mu) / sd for lp, mu, sd in zip(lps, mus, sigmas)]
        assert got_pp[i] == pytest.approx(lowest_mean(z, k), abs=1e-6)


def test_loss_zlib_reference_equal_direct_formulas(fixed):
    adapter, model, frame = fixed
    torch.manual_seed(4)
    ref_model = adapter.build_model().eval()
    loss = mb.loss_score(adapter, model, frame)["score"].to_list()
    zl = mb.zlib_score(adapter, model, frame)["score"].to_list()
    ref = mb.reference_score(adapter, model, frame, reference_model=ref_model)["score"].to_list()
    for i, text in enumerate(TEXTS):
        lps, _, _ = direct_token_quantities(model, text, adapter.config.block_size)
        ref_lps, _, _ = direct_token_quantities(ref_model, text, adapter.config.block_size)
        mean_lp = sum(lps) / len(lps)
        assert loss[i] == pytest.approx(mean_lp, abs=1e-6)
        assert zl[i] == pytest.approx(mean_lp / len(zlib.compress(text.encode("utf-8"))), abs=1e-7)
        assert ref[i] == pytest.approx(mean_lp - sum(ref_lps) / len(ref_lps), abs=1e-6)
    # the loss score is the negated adapter loss (higher = more member-like)
    losses = adapter.example_losses(model, adapter.collate(frame)).detach().double().numpy()
    np.testing.assert_allclose(loss, -losses, atol=1e-5)


def test_all_scores_matches_single_scorers(fixed):
    adapter, model, frame = fixed
    torch.manual_seed(5)
    ref_model = adapter.build_model().eval()
    table = mb.all_scores(adapter, model, frame, k=0.3, reference_model=ref_model, batch_size=4)
    singles = {
        "loss": mb.loss_score(adapter, model, frame),
        "zlib": mb.zlib_score(adapter, model, frame),
        "min_k": mb.min_k_score(adapter, model, frame, k=0.3),
        "min_k_plus_plus": mb.min_k_plus_plus_score(adapter, model, frame, k=0.3),
        "reference": mb.reference_score(adapter, model, frame, reference_model=ref_model),
    }
    assert table["example_id"].to_list() == frame["example_id"].to_list()
    for name, single in singles.items():
        np.testing.assert_allclose(table[name].to_numpy(), single["score"].to_numpy(), atol=1e-6, err_msg=name)


class FiveTokenAdapter:
    """A 5-symbol 'model' whose next-token distribution is a fixed table indexed by the previous token."""

    name = "five"
    config_cls = dict

    def __init__(self) -> None:
        self.config = {}
        self.table = torch.log_softmax(torch.tensor([
            [2.0, 0.1, -1.0, 0.5, 0.0], [0.0, -0.7, 0.0, 1.2, 0.0], [-3.0, 1.0, 2.0, 0.0, 0.3],
            [1.5, -0.5, 0.2, 0.9, -2.0], [0.0, 4.0, -1.0, 0.0, 1.0],
        ], dtype=torch.float64), dim=-1)

    def collate(self, frame):
        seqs = [[int(c) for c in s] for s in frame["text"].to_list()]
        width = max(len(s) for s in seqs)
        ids = torch.zeros(len(seqs), width, dtype=torch.long)
        mask = torch.zeros(len(seqs), width)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1.0
        return {"input_ids": ids[:, :-1], "targets": ids[:, 1:], "target_mask": mask[:, 1:]}

    def token_distributions(self, model, batch):
        return self.table[batch["input_ids"]]

    def token_logprobs(self, model, batch):
        lp = self.token_distributions(model, batch).gather(-1, batch["targets"].unsqueeze(-1)).squeeze(-1)
        return lp * batch["target_mask"]


def test_min_k_plus_plus_moments_brute_force_on_five_token_vocab():
    adapter = FiveTokenAdapter()
    frame = pl.DataFrame({"example_id": ["a", "b"], "text": ["0123401", "4432"]})
    got = mb.min_k_plus_plus_score(adapter, torch.nn.Identity(), frame, k=1.0)["score"].to_list()
    probs = adapter.table.exp().numpy()
    for score, text in zip(got, ["0123401", "4432"]):
        zs = []
        for prev, nxt in itertools.pairwise(text):
            p = probs[int(prev)]
            mu = sum(p[v] * math.log(p[v]) for v in range(5))
            var = sum(p[v] * math.log(p[v]) ** 2 for v in range(5)) - mu**2
            zs.append((math.log(p[int(nxt)]) - mu) / math.sqrt(var))
        assert score == pytest.approx(sum(zs) / len(zs), abs=1e-12)


def test_bad_inputs_name_the_problem(fixed):
    adapter, model, frame = fixed
    with pytest.raises(CurationError, match="k=1.5"):
        mb.min_k_score(adapter, model, frame, k=1.5)
    with pytest.raises(CurationError, match="example_id"):
        mb.loss_score(adapter, model, frame.drop("example_id"))
    with pytest.raises(CurationError, match="row 1"):
        mb.loss_score(adapter, model, pl.DataFrame({"example_id": [1, 2], "text": ["ab", ""]}))
    with pytest.raises(CurationError, match="token_distributions"):
        mb.min_k_plus_plus_score(type("A", (), {"name": "x", "token_logprobs": lambda *a: None})(), model, frame)


def test_scorers_are_registered_plugins():
    for name in mb.SCORERS:
        assert get_plugin("curation.membership_scores", name) is getattr(mb, f"{name}_score")
