"""Hugging Face ``transformers`` causal-LM adapter (optional extra ``hf``: ``pip install 'curation[hf]'``).

Rows carry ``text``. The model comes either from a local folder / cached hub id (``model``; nothing is
downloaded unless ``local_files_only`` is false) or, when ``model`` is empty, is built with random weights from an
``architecture`` dict (a transformers config, e.g. ``{"model_type": "gpt2", "n_layer": 2, ...}``) — which is how
tests run without network. ``tokenizer: bytes`` is a byte-level fallback (token id = UTF-8 byte, vocabulary 256)
so no tokenizer file is needed either. ``lora_r > 0`` wraps the model with a ``peft`` LoRA adapter.

Besides the ``ModelAdapter`` protocol it offers ``token_logprobs`` and ``token_distributions``, so every
membership scorer in ``curation.provenance.membership`` accepts it. ``transformers``/``peft`` are imported lazily.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import polars as pl
import torch
import torch.nn.functional as F
from torch import nn

from curation.errors import MissingExtraError
from curation.models.base import Batch
from curation.models.gpt import encode_texts

BYTES = "bytes"


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(
            f"the Hugging Face adapter needs '{module}': pip install 'curation[hf]' (transformers, peft)"
        ) from None


@dataclass(frozen=True, kw_only=True)
class HFCausalLMConfig:
    """Which transformers causal LM and tokenizer to use."""

    model: str = field(default="", metadata={"help": "local folder or cached hub id; empty = random init from architecture"})
    architecture: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "transformers config dict (needs model_type) used when model is empty"}
    )
    tokenizer: str = field(default=BYTES, metadata={"help": "'bytes' (byte-level ids 0-255) or a tokenizer folder/id"})
    max_length: int = field(default=128, metadata={"help": "tokens per example; longer texts are truncated"})
    local_files_only: bool = field(default=True, metadata={"help": "never download weights or tokenizers"})
    lora_r: int = field(default=0, metadata={"help": "LoRA rank (peft); 0 = no LoRA"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling alpha"})
    lora_target_modules: tuple[str, ...] = field(default=(), metadata={"help": "module names LoRA wraps; empty = peft default"})
    seed: int = field(default=0, metadata={"help": "seed for random initialisation"})

    def __post_init__(self) -> None:
        if not self.model and "model_type" not in self.architecture:
            raise ValueError("set either model (a folder or id) or architecture with a model_type")
        if self.max_length < 2:
            raise ValueError("max_length must be at least 2")


class HFCausalLMAdapter:
    """Adapter for ``transformers.AutoModelForCausalLM``: loss = mean next-token NLL per row."""

    name: ClassVar[str] = "hf_causal_lm"
    kind: ClassVar[str] = "causal_lm"
    config_cls: ClassVar[type] = HFCausalLMConfig

    def __init__(self, config: HFCausalLMConfig) -> None:
        self.config = config
        self._tokenizer: Any = None

    def build_model(self) -> nn.Module:
        transformers = _require("transformers")
        cfg = self.config
        if cfg.model:
            model = transformers.AutoModelForCausalLM.from_pretrained(cfg.model, local_files_only=cfg.local_files_only)
        else:
            arch = dict(cfg.architecture)
            hf_config = transformers.AutoConfig.for_model(arch.pop("model_type"), **arch)
            torch.manual_seed(cfg.seed)
            model = transformers.AutoModelForCausalLM.from_config(hf_config)
        if cfg.lora_r > 0:
            peft = _require("peft")
            lora = peft.LoraConfig(
                r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=list(cfg.lora_target_modules) or None,
                task_type="CAUSAL_LM",
            )
            model = peft.get_peft_model(model, lora)
        model.eval()
        return model

    def _encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        length = self.config.max_length + 1
        if self.config.tokenizer == BYTES:
            return encode_texts(texts, length)
        if self._tokenizer is None:
            transformers = _require("transformers")
            tok = transformers.AutoTokenizer.from_pretrained(
                self.config.tokenizer, local_files_only=self.config.local_files_only
            )
            if tok.pad_token_id is None:
                tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.convert_ids_to_tokens(0)
            tok.padding_side = "right"
            self._tokenizer = tok
        enc = self._tokenizer(texts, truncation=True, max_length=length, padding="max_length", return_tensors="pt")
        return enc["input_ids"].long(), enc["attention_mask"].float()

    def collate(self, frame: pl.DataFrame) -> Batch:
        ids, mask = self._encode(frame["text"].to_list())
        return {"input_ids": ids[:, :-1], "attention_mask": mask[:, :-1], "targets": ids[:, 1:],
                "target_mask": mask[:, 1:]}

    def logits(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Next-token logits ``[batch, time, vocab]``."""
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"].long())
        return out.logits

    def input_embeddings(self, model: nn.Module) -> torch.Tensor:
        """The token embedding matrix ``[vocab, d_model]``."""
        return model.get_input_embeddings().weight

    def token_logprobs(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Log-probability of each target token, ``[batch, time]`` (zero where masked)."""
        logp = torch.log_softmax(self.logits(model, batch).float(), dim=-1)
        return logp.gather(-1, batch["targets"].unsqueeze(-1)).squeeze(-1) * batch["target_mask"]

    def token_distributions(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Log of the full next-token distribution, ``[batch, time, vocab]``, normalised in float64 (Min-K%++
        moments are sensitive to float32 rounding; lower the scorer's batch size for large vocabularies)."""
        return torch.log_softmax(self.logits(model, batch).double(), dim=-1)

    def example_losses(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        nll = F.cross_entropy(self.logits(model, batch).transpose(1, 2).float(), batch["targets"], reduction="none")
        mask = batch["target_mask"]
        return (nll * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)

    def measurement(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return self.example_losses(model, batch)

    def tracked_modules(self, model: nn.Module) -> list[str]:
        """Linear layers (and GPT-2's ``Conv1D``); with LoRA only the trainable LoRA layers."""
        names = [n for n, m in model.named_modules()
                 if isinstance(m, nn.Linear) or type(m).__name__ == "Conv1D"]
        if self.config.lora_r > 0:
            names = [n for n in names if "lora_" in n]
        return names
