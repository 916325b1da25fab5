"""A small byte-level causal GPT (about 1-5 M parameters) and its adapter.

Bytes are the vocabulary (256 symbols), so any UTF-8 text is valid input and no tokenizer has to be trained or
versioned. Each table row (``text``) is one example; its loss is the mean next-byte negative log-likelihood.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import polars as pl
import torch
import torch.nn.functional as F
from torch import nn

from curation.models.base import Batch

VOCAB = 256


@dataclass(frozen=True, kw_only=True)
class ByteGPTConfig:
    """Architecture of the byte-level GPT."""

    n_layer: int = field(default=3, metadata={"help": "number of transformer blocks"})
    n_head: int = field(default=4, metadata={"help": "attention heads per block"})
    d_model: int = field(default=192, metadata={"help": "residual width"})
    block_size: int = field(default=128, metadata={"help": "context length in bytes; longer texts are truncated"})
    dropout: float = field(default=0.0, metadata={"help": "dropout probability"})

    def __post_init__(self) -> None:
        if self.d_model % self.n_head:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_head={self.n_head}")
        if self.block_size < 2:
            raise ValueError("block_size must be at least 2")


class Block(nn.Module):
    """Pre-norm transformer block with causal self-attention."""

    def __init__(self, cfg: ByteGPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.fc = nn.Linear(cfg.d_model, 4 * cfg.d_model)
        self.fc_out = nn.Linear(4 * cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        shape = (b, t, self.n_head, c // self.n_head)
        q, k, v = (z.view(shape).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.fc_out(F.gelu(self.fc(self.ln2(x))))


class ByteGPT(nn.Module):
    """Decoder-only transformer over bytes."""

    def __init__(self, cfg: ByteGPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(VOCAB, cfg.d_model)
        self.pos = nn.Embedding(cfg.block_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, VOCAB, bias=False)
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith(("proj.weight", "fc_out.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[-1]
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def encode_texts(texts: list[str], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bytes of each text, truncated/padded to ``length``; returns ``(ids, mask)`` with mask 1 on real bytes."""
    ids = torch.zeros(len(texts), length, dtype=torch.long)
    mask = torch.zeros(len(texts), length, dtype=torch.float32)
    for i, text in enumerate(texts):
        raw = text.encode("utf-8")[:length]
        if raw:
            ids[i, : len(raw)] = torch.frombuffer(bytearray(raw), dtype=torch.uint8).long()
            mask[i, : len(raw)] = 1.0
    return ids, mask


class ByteGPTAdapter:
    """Adapter for ``ByteGPT``: rows with a ``text`` column; loss = mean next-byte NLL per row."""

    name: ClassVar[str] = "byte_gpt"
    kind: ClassVar[str] = "causal_lm"
    config_cls: ClassVar[type] = ByteGPTConfig

    def __init__(self, config: ByteGPTConfig | None = None) -> None:
        self.config = config or ByteGPTConfig()

    def build_model(self) -> ByteGPT:
        return ByteGPT(self.config)

    def collate(self, frame: pl.DataFrame) -> Batch:
        ids, mask = encode_texts(frame["text"].to_list(), self.config.block_size + 1)
        return {"input_ids": ids[:, :-1], "targets": ids[:, 1:], "target_mask": mask[:, 1:]}

    def logits(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Next-byte logits ``[batch, time, 256]``."""
        return model(batch["input_ids"])

    def input_embeddings(self, model: nn.Module) -> torch.Tensor:
        """The byte embedding matrix ``[256, d_model]``."""
        return model.tok.weight

    def token_logprobs(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Log-probability of each target byte, shape ``[batch, time]`` (zero where masked)."""
        logits = model(batch["input_ids"])
        logp = torch.log_softmax(logits.float(), dim=-1)
        picked = logp.gather(-1, batch["targets"].unsqueeze(-1)).squeeze(-1)
        return picked * batch["target_mask"]

    def token_distributions(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Log of the full next-byte distribution at every target position, shape ``[batch, time, 256]``.

        Membership scores such as Min-K%++ normalise each token's log-probability by the moments of this
        distribution, which float32 rounding visibly perturbs, so the normalisation is done in float64.
        Positions where ``target_mask`` is 0 hold valid but meaningless rows.
        """
        return torch.log_softmax(model(batch["input_ids"]).double(), dim=-1)

    def example_losses(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        logits = model(batch["input_ids"])
        nll = F.cross_entropy(logits.transpose(1, 2).float(), batch["targets"], reduction="none")
        mask = batch["target_mask"]
        return (nll * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)

    def measurement(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return self.example_losses(model, batch)

    def tracked_modules(self, model: nn.Module) -> list[str]:
        return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
