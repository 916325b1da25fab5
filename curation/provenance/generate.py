"""Sample text from a byte-level GPT: the "suspect text" of the observational provenance tests, and control text
matched to a suspect text (same prompts, same completion lengths) for observational test (b).

Bytes are sampled at a temperature from the model's next-byte distribution restricted to printable ASCII and
newline, so every sample decodes to valid UTF-8 text whose bytes are exactly the sampled tokens.
"""

from __future__ import annotations

import polars as pl
import torch
from torch import nn

from curation.errors import CurationError
from curation.models.gpt import ByteGPTAdapter

PRINTABLE = torch.tensor([10] + list(range(32, 127)))


@torch.no_grad()
def sample_texts(
    adapter: ByteGPTAdapter, model: nn.Module, prompts: list[str], *, n_new: int, temperature: float = 1.0,
    seed: int = 0,
) -> list[str]:
    """Continue each prompt by ``n_new`` sampled bytes; returns only the continuations."""
    if n_new < 1 or temperature <= 0:
        raise ValueError("n_new and temperature must be positive")
    gen = torch.Generator().manual_seed(seed)
    block = adapter.config.block_size
    model.eval()
    outs = []
    for prompt in prompts:
        ids = list(prompt.encode("utf-8"))
        new: list[int] = []
        for _ in range(n_new):
            ctx = torch.tensor([(ids + new)[-block:]])
            logits = model(ctx)[0, -1].double()[PRINTABLE] / temperature
            new.append(int(PRINTABLE[torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)]))
        outs.append(bytes(new).decode("ascii"))
    return outs


def matched_samples(adapter: ByteGPTAdapter, model: nn.Module, texts: pl.DataFrame, *, seed: int = 0) -> pl.DataFrame:
    """Text sampled from ``model`` like ``texts``: each row's ``prompt`` continued by as many bytes as its ``text``
    has (rows without a prompt column are continued from a newline)."""
    if not isinstance(adapter, ByteGPTAdapter):
        raise CurationError(f"control text sampling needs a byte-level GPT checkpoint, got adapter '{adapter.name}'")
    prompts = texts["prompt"].to_list() if "prompt" in texts.columns else ["\n"] * texts.height
    lengths = texts["text"].str.len_bytes().to_list()
    out = [sample_texts(adapter, model, [p], n_new=max(1, n), seed=seed + i)[0]
           for i, (p, n) in enumerate(zip(prompts, lengths, strict=True))]
    return pl.DataFrame({"example_id": texts["example_id"], "prompt": prompts, "text": out})
