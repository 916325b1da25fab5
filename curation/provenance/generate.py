"""Sample text from a byte-level GPT: the "suspect text" of the observational provenance tests.

Bytes are sampled at a temperature from the model's next-byte distribution restricted to printable ASCII and
newline, so every sample decodes to valid UTF-8 text whose bytes are exactly the sampled tokens.
"""

from __future__ import annotations

import torch
from torch import nn

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
