"""The table of bad inputs: every `curate` command and DVC stage, given a bad table, checkpoint, option or params
block, ends in exactly one stderr line ``error: ...`` naming the file, row, field or option, exit status 2, no
traceback, and leaves the outputs of an earlier good run byte-identical.

Each case is one record: the command line (or a stage and its params block), how its bad input is made from a small
good workspace (a features table, a text table, MLP and byte-GPT checkpoints), the regex the error line must match
and the earlier outputs that must survive. Commands run in-process through the console entry point
``curation.cli.main`` (fast); the ``real_process`` cases run the same through a real ``python`` process.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
import yaml

from curation.cli import main
from curation.models.checkpoints import CheckpointInfo, save_checkpoint
from curation.models.classifiers import ClassifierConfig, MLPClassifierAdapter
from curation.models.gpt import ByteGPTAdapter, ByteGPTConfig

MLP = {"n_features": 6, "n_classes": 3, "hidden": [8]}
LM = {"n_layer": 1, "n_head": 2, "d_model": 16, "block_size": 32}
GOOD_OUTPUT = b"output of an earlier good run\n"


# --- the good workspace ---------------------------------------------------------------------------------------


def _save(path: Path, adapter: str, config: dict, state: dict, step: int = 1, lr: float = 0.1) -> None:
    save_checkpoint(path, state, CheckpointInfo(adapter=adapter, model_config=config, step=step, learning_rate=lr))


def _build_workspace(root: Path) -> None:
    """train.parquet / queries.parquet (6 features, 3 classes), texts.parquet, ckpt/ (two MLP checkpoints with a
    manifest), model.safetensors and lm.safetensors, and checkpoints that are bad in one way each."""
    rng = np.random.default_rng(0)
    n = 24
    pl.DataFrame({"example_id": [f"r{i}" for i in range(n)], "features": rng.normal(size=(n, 6)).tolist(),
                  "label": rng.integers(0, 3, n)}).write_parquet(root / "train.parquet")
    pl.DataFrame({"example_id": ["q0", "q1", "q2"], "features": rng.normal(size=(3, 6)).tolist(),
                  "label": [0, 1, 2]}).write_parquet(root / "queries.parquet")
    words = ["alpha", "beta", "gamma", "delta"]
    pl.DataFrame({"example_id": [f"t{i}" for i in range(12)],
                  "text": [" ".join(rng.choice(words, 5)) for _ in range(12)]}).write_parquet(root / "texts.parquet")
    torch.manual_seed(0)
    mlp = MLPClassifierAdapter(ClassifierConfig(n_features=6, n_classes=3, hidden=(8,)))
    (root / "ckpt").mkdir()
    entries = []
    for step, lr in ((1, 0.1), (2, 0.05)):
        _save(root / "ckpt" / f"ckpt-{step}.safetensors", "mlp", MLP, mlp.build_model().state_dict(), step, lr)
        entries.append({"file": f"ckpt-{step}.safetensors", "step": step, "learning_rate": lr})
    (root / "ckpt" / "checkpoints.json").write_text(json.dumps({"checkpoints": entries}))
    state = mlp.build_model().state_dict()
    _save(root / "model.safetensors", "mlp", MLP, state)
    nan = {k: v.clone() for k, v in state.items()}
    nan["0.weight"][0, 0] = float("nan")
    _save(root / "nan_weights.safetensors", "mlp", MLP, nan)
    _save(root / "huge_weights.safetensors", "mlp", MLP, {k: v * 1e30 for k, v in state.items()})  # overflows
    small = MLPClassifierAdapter(ClassifierConfig(n_features=6, n_classes=3, hidden=(4,))).build_model()
    _save(root / "wrong_shapes.safetensors", "mlp", MLP, small.state_dict())
    five = MLPClassifierAdapter(ClassifierConfig(n_features=5, n_classes=3, hidden=(8,))).build_model()
    _save(root / "five_features.safetensors", "mlp", {**MLP, "n_features": 5}, five.state_dict())
    _save(root / "lm.safetensors", "byte_gpt", LM, ByteGPTAdapter(ByteGPTConfig(**LM)).build_model().state_dict(),
          lr=0.01)
    pl.DataFrame({"example_id": ["r0", "r1"]}).write_parquet(root / "request.parquet")


# --- bad-input makers -----------------------------------------------------------------------------------------


def _edit(source: str, dest: str, change: Callable[[pl.DataFrame], pl.DataFrame]) -> Callable[[Path], None]:
    """Write ``dest`` as the workspace table ``source`` changed by ``change``."""
    return lambda w: change(pl.read_parquet(w / source)).write_parquet(w / dest)


def _feature(row: int, index: int, value: float) -> Callable[[pl.DataFrame], pl.DataFrame]:
    def change(frame: pl.DataFrame) -> pl.DataFrame:
        rows = [list(r) for r in frame["features"].to_list()]
        rows[row][index] = value
        return frame.with_columns(pl.Series("features", rows))

    return change


def _ragged(row: int, length: int) -> Callable[[pl.DataFrame], pl.DataFrame]:
    def change(frame: pl.DataFrame) -> pl.DataFrame:
        rows = [list(r) for r in frame["features"].to_list()]
        rows[row] = rows[row][:length]
        return frame.with_columns(pl.Series("features", rows))

    return change


def _set(column: str, row: int, value: object) -> Callable[[pl.DataFrame], pl.DataFrame]:
    return lambda f: f.with_columns(
        pl.when(pl.int_range(pl.len()) == row).then(pl.lit(value)).otherwise(pl.col(column)).alias(column))


def _bytes(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda w: (w / name).write_bytes(data)


def _text(name: str, text: str) -> Callable[[Path], None]:
    return lambda w: (w / name).write_text(text, encoding="utf-8")


def _all(*makers: Callable[[Path], None]) -> Callable[[Path], None]:
    return lambda w: [make(w) for make in makers]


TASKS = _edit("texts.parquet", "tasks.parquet", lambda f: f.with_columns(task=pl.lit("a")))
NAN = _edit("train.parquet", "bad.parquet", _feature(1, 2, float("nan")))
INF = _edit("train.parquet", "bad.parquet", _feature(2, 0, float("inf")))
NEG_INF = _edit("train.parquet", "bad.parquet", _feature(5, 5, float("-inf")))
RAGGED = _edit("train.parquet", "bad.parquet", _ragged(3, 4))
ROW_NAN = r"bad.parquet: column 'features', row 1 \(example_id='r1'\): non-finite value nan at index 2"
ROW_RAGGED = r"bad.parquet: column 'features', row 3 \(example_id='r3'\): 4 values, expected 6"


# --- the table ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One bad input: ``argv`` of ``curate`` (``{w}`` = the case's workspace) or a ``stage`` with its ``params``
    block; ``setup`` makes the bad input; ``error`` must match the one error line; ``outputs`` are files of an
    earlier good run that must come out byte-identical."""

    name: str
    error: str
    argv: tuple[str, ...] = ()
    stage: str = ""
    params: dict | None = None
    setup: Callable[[Path], None] | None = None
    outputs: tuple[str, ...] = ()
    real_process: bool = False


INFLUENCE_OUT = ("out/matrix.npy", "out/top_k.parquet", "out/self_influence.parquet")
LABEL_OUT = ("out/label_issues.parquet", "out/summary.parquet", "out/filtered.parquet", "out/manifest.json")
TRAIN_OUT = ("trained/checkpoints.json", "trained/ckpt-000001.safetensors")


def select_targeted(*extra: str, targets: str = "texts.parquet") -> tuple[str, ...]:
    return ("select-targeted", "--pool", "{w}/texts.parquet", "--targets", f"{{w}}/{targets}", "--out", "{w}/sel",
            *extra)


def influence(*extra: str, train: str = "train.parquet", queries: str = "queries.parquet",
              checkpoints: str = "ckpt") -> tuple[str, ...]:
    return ("influence", "--checkpoints", f"{{w}}/{checkpoints}", "--train", f"{{w}}/{train}", "--queries",
            f"{{w}}/{queries}", "--out", "{w}/out", *extra)


def label_errors(*extra: str, train: str = "train.parquet", checkpoints: str = "ckpt") -> tuple[str, ...]:
    return ("label-errors", "--checkpoints", f"{{w}}/{checkpoints}", "--train", f"{{w}}/{train}", "--out",
            "{w}/out", *extra)


def train(*extra: str, table: str = "train.parquet") -> tuple[str, ...]:
    return ("train", f"{{w}}/{table}", "--out", "{w}/trained", *extra)


def membership(*extra: str, table: str = "texts.parquet", model: str = "lm.safetensors") -> tuple[str, ...]:
    return ("membership", f"{{w}}/{table}", "--model", f"{{w}}/{model}", "--out", "{w}/scores.parquet", *extra)


def unlearn(*extra: str, request: str = "request.parquet", model: str = "model.safetensors") -> tuple[str, ...]:
    return ("unlearn", "--train", "{w}/train.parquet", "--request", f"{{w}}/{request}", "--model",
            f"{{w}}/{model}", "--out", "{w}/unlearned.safetensors", *extra)


def verify(*extra: str, holdout: str = "queries.parquet") -> tuple[str, ...]:
    return ("verify-unlearning", "--train", "{w}/train.parquet", "--request", "{w}/request.parquet", "--holdout",
            f"{{w}}/{holdout}", "--original", "{w}/model.safetensors", "--unlearned", "{w}/model.safetensors",
            "--tag-model", "", "--out", "{w}/verify", *extra)


def gradients_block(**job: object) -> dict:
    base = {"checkpoints": "ckpt", "train_data": "train.parquet", "projection": {"kind": "gaussian", "dim": 8}}
    return {"store": "store", "lm": {"checkpoints": "lm.safetensors", "train_data": "texts.parquet"},
            "classifier": {**base, **job}}


CASES = [
    # curate validate: data contracts (finite numbers, equal lengths, labels, ids, nulls, dtypes, files)
    Case("validate_nan_feature", ROW_NAN, ("validate", "{w}/bad.parquet", "--contract", "features"), setup=NAN),
    Case("validate_inf_feature", r"bad.parquet: column 'features', row 2 \(example_id='r2'\): non-finite value inf "
         r"at index 0", ("validate", "{w}/bad.parquet", "--contract", "features"), setup=INF),
    Case("validate_negative_inf_feature", r"row 5 \(example_id='r5'\): non-finite value -inf at index 5",
         ("validate", "{w}/bad.parquet", "--contract", "features"), setup=NEG_INF),
    Case("validate_nan_in_fixed_width_array", r"bad.parquet: column 'features', row 1 \(example_id='r1'\): "
         r"non-finite value nan at index 2", ("validate", "{w}/bad.parquet", "--contract", "features"),
         setup=_edit("train.parquet", "bad.parquet", lambda f: _feature(1, 2, float("nan"))(f).with_columns(
             pl.col("features").list.to_array(6)))),
    Case("validate_ragged_features", ROW_RAGGED + r" \(like most rows\)",
         ("validate", "{w}/bad.parquet", "--contract", "features"), setup=RAGGED),
    Case("validate_label_12_of_10_classes", r"bad.parquet: column 'label', row 4 \(example_id='r4'\): value "
         r"outside \[0, 9\] 12", ("validate", "{w}/bad.parquet", "--contract", "features", "--n-classes", "10"),
         setup=_edit("train.parquet", "bad.parquet", _set("label", 4, 12))),
    Case("validate_negative_label", r"column 'label', row 0 \(example_id='r0'\): value outside \[0, 2\] -1",
         ("validate", "{w}/bad.parquet", "--contract", "features", "--n-classes", "3"),
         setup=_edit("train.parquet", "bad.parquet", _set("label", 0, -1))),
    Case("validate_n_classes_0", r"curate validate: Invalid value for '--n-classes': 0 is not in the range x>=2",
         ("validate", "{w}/train.parquet", "--contract", "features", "--n-classes", "0")),
    Case("validate_n_classes_1", r"'--n-classes': 1 is not in the range x>=2",
         ("validate", "{w}/train.parquet", "--contract", "features", "--n-classes", "1")),
    Case("validate_duplicate_ids", r"column 'example_id', row 3 \(example_id='r3'\): duplicate value 'r3'",
         ("validate", "{w}/bad.parquet", "--contract", "features"),
         setup=_edit("train.parquet", "bad.parquet", _set("example_id", 7, "r3"))),
    Case("validate_null_label", r"column 'label', row 6 \(example_id='r6'\): null value None",
         ("validate", "{w}/bad.parquet", "--contract", "features"),
         setup=_edit("train.parquet", "bad.parquet", _set("label", 6, None))),
    Case("validate_missing_column", r"bad.parquet: missing required column 'label' \(contract 'features'\)",
         ("validate", "{w}/bad.parquet", "--contract", "features"),
         setup=_edit("train.parquet", "bad.parquet", lambda f: f.drop("label"))),
    Case("validate_wrong_dtype", r"bad.parquet: column 'label' has dtype String, expected integer",
         ("validate", "{w}/bad.parquet", "--contract", "features"),
         setup=_edit("train.parquet", "bad.parquet", lambda f: f.with_columns(pl.col("label").cast(pl.String)))),
    Case("validate_empty_file", r"bad.parquet: file is empty", ("validate", "{w}/bad.parquet"),
         setup=_bytes("bad.parquet", b"")),
    Case("validate_no_rows", r"bad.parquet: table has no rows", ("validate", "{w}/bad.parquet"),
         setup=_edit("texts.parquet", "bad.parquet", lambda f: f.head(0))),
    Case("validate_corrupt_parquet", r"bad.parquet: cannot read as parquet", ("validate", "{w}/bad.parquet"),
         setup=_bytes("bad.parquet", b"PAR1\x00\x01garbage")),
    Case("validate_non_utf8_csv", r"bad.csv: line 3: text is not valid UTF-8", ("validate", "{w}/bad.csv"),
         setup=_bytes("bad.csv", b"example_id,text\na,ok\nb,caf\xe9\n")),
    Case("validate_bad_jsonl", r"bad.jsonl: cannot read as jsonl", ("validate", "{w}/bad.jsonl"),
         setup=_text("bad.jsonl", '{"example_id": "a", "text": "x"}\n{"example_id": "b", "te\n')),
    Case("validate_unsupported_suffix", r"notes.txt: unsupported table format '.txt'", ("validate", "{w}/notes.txt"),
         setup=_text("notes.txt", "hello")),
    Case("validate_missing_file", r"absent.parquet: file not found", ("validate", "{w}/absent.parquet")),
    Case("validate_unknown_contract", r"Invalid value for '--contract': 'bogus' is not one of 'text', 'features'",
         ("validate", "{w}/texts.parquet", "--contract", "bogus")),
    Case("validate_unknown_option", r"curate validate: unknown option '--n-class'; did you mean '--n-classes'\? "
         r"\(valid: --contract, --help, --n-classes, -h\)", ("validate", "{w}/texts.parquet", "--n-class", "3")),
    Case("validate_empty_text", r"column 'text', row 2 \(example_id='t2'\): empty text ''",
         ("validate", "{w}/bad.parquet"), setup=_edit("texts.parquet", "bad.parquet", _set("text", 2, ""))),
    Case("validate_null_text", r"column 'text', row 9 \(example_id='t9'\): null value",
         ("validate", "{w}/bad.parquet"), setup=_edit("texts.parquet", "bad.parquet", _set("text", 9, None))),
    # curate influence: tables, options, methods, checkpoints; earlier outputs untouched
    Case("influence_nan_train_features", ROW_NAN, influence(train="bad.parquet"), setup=NAN, outputs=INFLUENCE_OUT),
    Case("influence_nan_query_features", r"bad.parquet: column 'features', row 0 \(example_id='q0'\): non-finite "
         r"value nan at index 0", influence(queries="bad.parquet"),
         setup=_edit("queries.parquet", "bad.parquet", _feature(0, 0, float("nan"))), outputs=INFLUENCE_OUT),
    Case("influence_ragged_train", ROW_RAGGED + r" \(the model's n_features\)", influence(train="bad.parquet"),
         setup=RAGGED, outputs=INFLUENCE_OUT),
    Case("influence_label_outside_model_classes", r"bad.parquet: column 'label', row 5 \(example_id='r5'\): value "
         r"outside \[0, 2\] 7", influence(train="bad.parquet"),
         setup=_edit("train.parquet", "bad.parquet", _set("label", 5, 7)), outputs=INFLUENCE_OUT),
    Case("influence_duplicate_query_ids", r"bad.parquet: column 'example_id', row 0 \(example_id='q0'\): duplicate",
         influence(queries="bad.parquet"), setup=_edit("queries.parquet", "bad.parquet", _set("example_id", 2, "q0")),
         outputs=INFLUENCE_OUT),
    Case("influence_query_missing_column", r"bad.parquet: missing required column 'features'",
         influence(queries="bad.parquet"), setup=_edit("queries.parquet", "bad.parquet", lambda f: f.drop("features")),
         outputs=INFLUENCE_OUT),
    Case("influence_top_k_0", r"curate influence: Invalid value for '--top-k': 0 is not in the range x>=1",
         influence("--top-k", "0"), outputs=INFLUENCE_OUT),
    Case("influence_top_k_negative", r"'--top-k': -3 is not in the range x>=1", influence("--top-k", "-3"),
         outputs=INFLUENCE_OUT),
    Case("influence_last_0", r"'--last': 0 is not in the range x>=1", influence("--last", "0"), outputs=INFLUENCE_OUT),
    Case("influence_train_sample_negative", r"'--train-sample': -5 is not in the range x>=0",
         influence("--train-sample", "-5"), outputs=INFLUENCE_OUT),
    Case("influence_batch_size_0", r"'--batch-size': 0 is not in the range x>=1", influence("--batch-size", "0"),
         outputs=INFLUENCE_OUT),
    Case("influence_dim_0", r"'--dim': 0 is not in the range x>=1", influence("--dim", "0"), outputs=INFLUENCE_OUT),
    Case("influence_unknown_set_key", r"--set: unknown key 'bogus_key' for method 'tracin'; valid: .*normalize.*projection",
         influence("--set", "bogus_key=1"), outputs=INFLUENCE_OUT),
    Case("influence_set_without_value", r"--set 'normalize': expected KEY=VALUE", influence("--set", "normalize"),
         outputs=INFLUENCE_OUT),
    Case("influence_membership_method", r"--method: unknown method 'membership_loss'; valid: ekfac, .*tracin, trak",
         influence("--method", "membership_loss"), outputs=INFLUENCE_OUT),
    Case("influence_method_typo", r"--method: unknown method 'tracn'; did you mean 'tracin'\? \(valid: .*\)", influence("--method", "tracn"),
         outputs=INFLUENCE_OUT),
    Case("influence_unknown_projection", r"Invalid value for '--projection': 'dense' is not one of",
         influence("--projection", "dense"), outputs=INFLUENCE_OUT),
    Case("influence_nan_weights", r"nan_weights.safetensors: tensor '0.weight' holds NaN or infinite",
         influence(checkpoints="nan_weights.safetensors"), outputs=INFLUENCE_OUT),
    Case("influence_wrong_shapes", r"wrong_shapes.safetensors: tensor '0.(weight|bias)' has shape",
         influence(checkpoints="wrong_shapes.safetensors"), outputs=INFLUENCE_OUT),
    Case("influence_checkpoint_disagrees_with_table", r"train.parquet: column 'features', row 0 \(example_id='r0'\): "
         r"6 values, expected 5 \(the model's n_features\)", influence(checkpoints="five_features.safetensors"),
         outputs=INFLUENCE_OUT),
    Case("influence_scores_overflow", r"self-influence: training row 0 is not finite; nothing written",
         influence(checkpoints="huge_weights.safetensors"), outputs=INFLUENCE_OUT),
    Case("influence_missing_checkpoint", r"absent.safetensors: checkpoint not found",
         influence(checkpoints="absent.safetensors"), outputs=INFLUENCE_OUT),
    Case("influence_missing_registered_version", r"models:/nope/3: .*nope", tuple(
         a.replace("{w}/models:/nope/3", "models:/nope/3") for a in influence(checkpoints="models:/nope/3")),
         outputs=INFLUENCE_OUT),
    Case("influence_checkpoint_folder_without_manifest", r"empty_ckpt.*(checkpoints.json|no checkpoint)",
         influence(checkpoints="empty_ckpt"), setup=lambda w: (w / "empty_ckpt").mkdir(), outputs=INFLUENCE_OUT),
    # curate label-errors
    Case("label_errors_nan_features", ROW_NAN, label_errors(train="bad.parquet"), setup=NAN, outputs=LABEL_OUT),
    Case("label_errors_ragged", ROW_RAGGED, label_errors(train="bad.parquet"), setup=RAGGED, outputs=LABEL_OUT),
    Case("label_errors_negative_fraction", r"'--fraction': -0.1 is not in the range 0<=x<=1",
         label_errors("--fraction", "-0.1"), outputs=LABEL_OUT),
    Case("label_errors_fraction_above_1", r"'--fraction': 1.5 is not in the range 0<=x<=1",
         label_errors("--fraction", "1.5"), outputs=LABEL_OUT),
    Case("label_errors_cross_fit_nan_features", ROW_NAN, ("label-errors", "{w}/bad.parquet", "--out", "{w}/out"),
         setup=NAN, outputs=LABEL_OUT),
    Case("label_errors_cross_fit_one_fold", r"'--folds': 1 is not in the range x>=2",
         ("label-errors", "{w}/train.parquet", "--folds", "1", "--out", "{w}/out"), outputs=LABEL_OUT),
    Case("label_errors_batch_size_0", r"'--batch-size': 0 is not in the range x>=1",
         label_errors("--batch-size", "0"), outputs=LABEL_OUT),
    Case("label_errors_unknown_method", r"--method: unknown method 'self_inf'.*valid: .*tracin", label_errors("--method",
         "self_inf"), outputs=LABEL_OUT),
    Case("label_errors_unknown_action", r"Invalid value for '--action': 'delete' is not one of 'drop', 'flag'",
         label_errors("--action", "delete"), outputs=LABEL_OUT),
    Case("label_errors_nan_weights", r"nan_weights.safetensors: tensor '0.weight' holds NaN",
         label_errors(checkpoints="nan_weights.safetensors"), outputs=LABEL_OUT),
    Case("label_errors_scores_overflow", r"label scores: row 0 \(example_id 'r0'\): score is not finite",
         label_errors(checkpoints="huge_weights.safetensors"), outputs=LABEL_OUT),
    Case("label_errors_missing_checkpoint", r"absent.safetensors: checkpoint not found",
         label_errors(checkpoints="absent.safetensors"), outputs=LABEL_OUT),
    Case("label_errors_missing_registered_version", r"models:/nope/latest: .*nope", tuple(
         a.replace("{w}/models:/", "models:/") for a in label_errors(checkpoints="models:/nope/latest")),
         outputs=LABEL_OUT),
    Case("label_errors_missing_known_errors", r"absent.parquet: file not found",
         label_errors("--known-errors", "{w}/absent.parquet"), outputs=LABEL_OUT),
    Case("label_errors_table_named_twice", r"name the labelled table once: as TABLE or as --train",
         ("label-errors", "{w}/train.parquet", "--train", "{w}/train.parquet", "--out", "{w}/out"), outputs=LABEL_OUT),
    Case("label_errors_no_table", r"name the labelled table once: as TABLE or as --train",
         ("label-errors", "--out", "{w}/out"), outputs=LABEL_OUT),
    Case("label_errors_cross_fit_tag_auto", r"--tag-model auto needs --checkpoints",
         ("label-errors", "{w}/train.parquet", "--tag-model", "auto", "--out", "{w}/out"), outputs=LABEL_OUT),
    Case("label_errors_cross_fit_two_rates", r"--lr: cross-fitting trains with one learning rate",
         ("label-errors", "{w}/train.parquet", "--lr", "0.1", "--lr", "0.2", "--out", "{w}/out"), outputs=LABEL_OUT),
    Case("label_errors_cross_fit_more_folds_than_rows", r"train.parquet: label \d+ has \d+ rows, fewer than the 20 folds",
         ("label-errors", "{w}/train.parquet", "--folds", "20", "--out", "{w}/out"), outputs=LABEL_OUT),
    Case("label_errors_lr_without_adapter", r"--model-option and --lr describe plain checkpoints and need --adapter",
         label_errors("--lr", "0.1"), outputs=LABEL_OUT),
    Case("label_errors_plain_rates_mismatch", r"--lr: 3 learning rates for 2 checkpoints",
         label_errors("--adapter", "mlp", "--lr", "0.1", "--lr", "0.2", "--lr", "0.3"), outputs=LABEL_OUT),
    # curate train
    Case("train_unknown_model", r"no plugin 'nope' in curation.model_adapters", train("--model", "nope"),
         outputs=TRAIN_OUT),
    Case("train_labels_outside_n_classes", r"train.parquet: row \d+: label 2 is outside 0..1 \(n_classes = 2\)",
         train("--model-option", "n_classes=2"), outputs=TRAIN_OUT),
    Case("train_features_contradict_model", r"train.parquet: rows have 6 features, but n_features = 4",
         train("--model-option", "n_features=4"), outputs=TRAIN_OUT),
    Case("train_unknown_model_option", r"mlp model options: unknown key 'widht'", train("--model-option", "widht=3"),
         outputs=TRAIN_OUT),
    Case("train_model_option_without_value", r"--model-option 'hidden': expected KEY=VALUE",
         train("--model-option", "hidden"), outputs=TRAIN_OUT),
    Case("train_unknown_training_option", r"training options: unknown key 'bogus'", train("--set", "bogus=1"),
         outputs=TRAIN_OUT),
    Case("train_epochs_0", r"'--epochs': 0(\.0)? is not in the range x>0", train("--epochs", "0"), outputs=TRAIN_OUT),
    Case("train_nan_features", ROW_NAN, train(table="bad.parquet"), setup=NAN, outputs=TRAIN_OUT),
    Case("train_missing_table", r"absent.parquet: file not found", train(table="absent.parquet"), outputs=TRAIN_OUT),
    # curate membership
    Case("membership_missing_text_column", r"train.parquet: missing column", membership(table="train.parquet"),
         outputs=("scores.parquet",)),
    Case("membership_null_text", r"bad.parquet: column 'text', row 3 \(example_id='t3'\): null value",
         membership(table="bad.parquet"), setup=_edit("texts.parquet", "bad.parquet", _set("text", 3, None)),
         outputs=("scores.parquet",)),
    Case("membership_k_0", r"Invalid value for '-k': 0.0 is not in the range 0<x<=1", membership("-k", "0"),
         outputs=("scores.parquet",)),
    Case("membership_k_above_1", r"'-k': 1.5 is not in the range 0<x<=1", membership("-k", "1.5"),
         outputs=("scores.parquet",)),
    Case("membership_batch_size_0", r"'--batch-size': 0 is not in the range x>=1", membership("--batch-size", "0"),
         outputs=("scores.parquet",)),
    Case("membership_missing_model", r"absent.safetensors: checkpoint not found",
         membership(model="absent.safetensors"), outputs=("scores.parquet",)),
    Case("membership_classifier_model", r"--model .*model.safetensors: membership scoring needs a causal_lm adapter; 'mlp' is classifier", membership(model="model.safetensors"),
         outputs=("scores.parquet",)),
    # curate unlearn / verify-unlearning
    Case("unlearn_request_unknown_ids", r"bad_request.parquet: .*'zz'", unlearn(request="bad_request.parquet"),
         setup=lambda w: pl.DataFrame({"example_id": ["r0", "zz"]}).write_parquet(w / "bad_request.parquet"),
         outputs=("unlearned.safetensors",)),
    Case("unlearn_steps_0", r"'--steps': 0 is not in the range x>=1", unlearn("--steps", "0"),
         outputs=("unlearned.safetensors",)),
    Case("unlearn_negative_lr", r"'--lr': -0.1 is not in the range x>0", unlearn("--lr", "-0.1"),
         outputs=("unlearned.safetensors",)),
    Case("unlearn_unknown_config_key", r"unlearn.yaml: unknown key 'stpes'; did you mean 'steps'",
         unlearn("--config", "{w}/unlearn.yaml"), setup=_text("unlearn.yaml", "stpes: 3\n"),
         outputs=("unlearned.safetensors",)),
    Case("unlearn_unknown_method", r"Invalid value for '--method': 'forget' is not one of",
         unlearn("--method", "forget"), outputs=("unlearned.safetensors",)),
    Case("unlearn_nan_weights", r"nan_weights.safetensors: tensor '0.weight' holds NaN",
         unlearn(model="nan_weights.safetensors"), outputs=("unlearned.safetensors",)),
    Case("verify_unlearning_unknown_config_key", r"thresholds.yaml: unknown key 'auc_margn'",
         verify("--config", "{w}/thresholds.yaml"), setup=_text("thresholds.yaml", "auc_margn: 0.1\n"),
         outputs=("verify/verdict.json",)),
    Case("verify_unlearning_calibration_of_another_shape",
         r"wrong_shapes.safetensors: tensor '0.(weight|bias)' has shape",
         verify("--calibration", "{w}/wrong_shapes.safetensors"), outputs=("verify/verdict.json",)),
    Case("verify_unlearning_calibration_of_another_model",
         r"five_features.safetensors: model \(mlp\) does not match .*model.safetensors \(mlp\); same architecture",
         verify("--calibration", "{w}/five_features.safetensors"), outputs=("verify/verdict.json",)),
    Case("verify_unlearning_missing_holdout", r"absent.parquet: file not found", verify(holdout="absent.parquet"),
         outputs=("verify/verdict.json",)),
    # the other commands
    Case("provenance_permutations_0", r"'--permutations': 0 is not in the range x>=1",
         ("provenance", "query", "--train", "{w}/texts.parquet", "--run", "{w}/ckpt", "--reference",
          "{w}/lm.safetensors", "--suspect", "{w}/lm.safetensors", "--permutations", "0")),
    Case("provenance_unknown_method", r"Invalid value for '--method': 'overlaps' is not one of 'overlap', 'retrain'",
         ("provenance", "observe", "--text", "{w}/texts.parquet", "--train", "{w}/texts.parquet", "--run",
          "{w}/ckpt", "--method", "overlaps")),
    Case("mixture_show_missing_file", r"absent.yaml", ("mixture", "show", "{w}/absent.yaml")),
    Case("mixture_tokens_0", r"'--tokens': 0 is not in the range x>=1",
         ("mixture", "influence", "--checkpoint", "{w}/lm.safetensors", "--train", "{w}/texts.parquet", "--val",
          "{w}/texts.parquet", "--tokens", "0")),
    Case("config_explain_unknown_stage", r"curate config explain: Invalid value .*'train_classifer' is not one of",
         ("config", "explain", "train_classifer")),
    Case("config_check_unknown_key", r"p.yaml:validate_data: unknown key 'reprot'; did you mean 'report'\?",
         ("config", "check", "{w}/p.yaml"), setup=_text("p.yaml", "validate_data:\n  reprot: x.json\n")),
    Case("schedule_bad_cron", r"--cron '0 25 \* \* \*'", ("schedule", "add", "nightly", "--cron", "0 25 * * *",
         "--target", "validate_data", "--project", "{w}"),
         setup=_text("dvc.yaml", "stages:\n  validate_data:\n    cmd: python -m curation.stages.validate_data\n")),
    Case("hooks_rerun_without_target", r"curate hooks serve: --rerun needs --target",
         ("hooks", "serve", "--rerun", "--project", "{w}")),
    Case("plugins_unknown_group", r"curation.scorer.*valid: .*curation.scorers", ("plugins", "--group",
         "curation.scorer")),
    Case("select_unknown_method", r"unknown method 'dsri'.*did you mean 'dsir'",
         ("select", "--pool", "{w}/texts.parquet", "--target", "{w}/texts.parquet", "--method", "dsri", "--out",
          "{w}/sel"), outputs=("sel/manifest.json",)),
    Case("select_unknown_budget", r"Invalid value for '--budget': 'rows' is not one of 'fraction', 'count', 'tokens'",
         ("select", "--pool", "{w}/texts.parquet", "--target", "{w}/texts.parquet", "--budget", "rows", "--out",
          "{w}/sel"), outputs=("sel/manifest.json",)),
    Case("select_bm25_unknown_stopwords", r"stopwords must be 'en' or empty, got 'de'",
         ("select", "--pool", "{w}/texts.parquet", "--target", "{w}/texts.parquet", "--method", "bm25", "--option",
          "stopwords=de", "--out", "{w}/sel"), outputs=("sel/manifest.json",)),
    Case("select_targeted_without_checkpoints", r"--method less needs --checkpoints",
         select_targeted("--method", "less"), outputs=("sel/manifest.json",)),
    Case("select_targeted_targets_without_task", r"texts.parquet: missing task column 'task' \(columns: example_id, text\)",
         select_targeted("--method", "less", "--checkpoints", "{w}/lm.safetensors"), outputs=("sel/manifest.json",)),
    Case("select_targeted_null_task", r"tasks.parquet: row 1: task column 'task' is null",
         select_targeted("--method", "gist", "--checkpoints", "{w}/lm.safetensors", targets="tasks.parquet"),
         setup=_edit("texts.parquet", "tasks.parquet", lambda f: f.with_columns(
             task=pl.when(pl.int_range(pl.len()) == 1).then(None).otherwise(pl.lit("a")))),
         outputs=("sel/manifest.json",)),
    Case("select_targeted_unknown_option_key", r"options.warmup: unknown key 'epoch'; did you mean 'epochs'\?",
         select_targeted("--method", "less", "--checkpoints", "{w}/lm.safetensors", "--option", "warmup.epoch=2",
                         targets="tasks.parquet"), setup=TASKS, outputs=("sel/manifest.json",)),
    Case("select_targeted_feature_option_without_value", r"--feature-option 'proj_dim': expected KEY=VALUE",
         select_targeted("--method", "bids", "--checkpoints", "{w}/lm.safetensors", "--feature-option", "proj_dim",
                         targets="tasks.parquet"), setup=TASKS, outputs=("sel/manifest.json",)),
    Case("select_targeted_budget_as_option", r"--option fraction: set the size of a bids selection with --budget",
         select_targeted("--method", "bids", "--checkpoints", "{w}/lm.safetensors", "--option", "fraction=0.2"),
         outputs=("sel/manifest.json",)),
    Case("select_targeted_group_quota_for_a_selector", r"--method ideal chooses its set by its own rule",
         select_targeted("--method", "ideal", "--group-column", "text"), outputs=("sel/manifest.json",)),
    Case("init_params_not_a_mapping", r"params.yaml: expected a mapping at the top level", ("init", "--dir", "{w}"),
         setup=_text("params.yaml", "- just\n- a list\n"), outputs=("params.yaml",)),
    Case("ui_port_out_of_range", r"curate ui: Invalid value for '--port': 70000 is not in the range 1<=x<=65535",
         ("ui", "--port", "70000")),
    Case("unknown_command", r"curate: unknown command 'valdate'; did you mean 'validate'\?", ("valdate", "x")),
    # DVC stages (python -m curation.stages.<stage>)
    Case("stage_validate_data_nan", ROW_NAN, stage="validate_data", setup=NAN, outputs=("out/validation.json",),
         params={"report": "out/validation.json", "tables": [{"path": "bad.parquet", "contract": "features"}]}),
    Case("stage_validate_data_ragged", ROW_RAGGED, stage="validate_data", setup=RAGGED,
         outputs=("out/validation.json",),
         params={"report": "out/validation.json", "tables": [{"path": "bad.parquet", "contract": "features"}]}),
    Case("stage_validate_data_n_classes_1", r"params.yaml:validate_data.tables\[0\].*n_classes", stage="validate_data",
         params={"report": "out/validation.json", "tables": [{"path": "train.parquet", "contract": "features",
                                                            "n_classes": 1}]}, outputs=("out/validation.json",)),
    Case("stage_validate_data_unknown_contract", r"params.yaml:validate_data.*contract 'feature' is not one of",
         stage="validate_data", params={"report": "out/validation.json",
                                        "tables": [{"path": "train.parquet", "contract": "feature"}]},
         outputs=("out/validation.json",)),
    Case("stage_compute_gradients_nan_train", ROW_NAN, stage="compute_gradients", setup=NAN,
         params=gradients_block(train_data="bad.parquet")),
    Case("stage_compute_gradients_batch_size_0", r"params.yaml:compute_gradients.classifier.*batch_size",
         stage="compute_gradients", params=gradients_block(batch_size=0)),
    Case("stage_compute_gradients_negative_sample", r"params.yaml:compute_gradients.classifier.*train_sample",
         stage="compute_gradients", params=gradients_block(train_sample=-5)),
    Case("stage_compute_gradients_missing_checkpoint", r"absent: checkpoint not found", stage="compute_gradients",
         params=gradients_block(checkpoints="absent")),
    Case("stage_score_influence_top_k_0", r"params.yaml:score_influence.*top_k must be at least 1",
         stage="score_influence", params={"top_k": 0}),
    Case("stage_unknown_key", r"params.yaml:detect_label_errors: unknown key 'out_dri'; did you mean 'out_dir'\?",
         stage="detect_label_errors", params={"out_dri": "x"}),
    Case("stage_train_classifier_nan_features", ROW_NAN, stage="train_classifier", setup=NAN,
         params={"train_data": "bad.parquet", "test_data": "queries.parquet", "model": MLP,
                 "train": {"epochs": 1}, "out_dir": "trained"}, outputs=("trained/checkpoints.json",)),
    Case("stage_train_classifier_one_class", r"params.yaml:train_classifier.model.*n_classes", stage="train_classifier",
         params={"train_data": "train.parquet", "test_data": "queries.parquet", "model": {**MLP, "n_classes": 1},
                 "out_dir": "trained"}, outputs=("trained/checkpoints.json",)),
    Case("stage_train_lm_null_text", r"bad.parquet: column 'text', row 3 \(example_id='t3'\): null value",
         stage="train_lm", setup=_edit("texts.parquet", "bad.parquet", _set("text", 3, None)),
         params={"train_data": "bad.parquet", "val_data": "texts.parquet", "model": LM, "out_dir": "trained"},
         outputs=("trained/checkpoints.json",)),
    Case("stage_prepare_data_unknown_key", r"params.yaml:prepare_data: unknown key 'out_dirr'; did you mean "
         r"'out_dir'\?", stage="prepare_data", params={"out_dirr": "data"}),
    Case("stage_build_report_unknown_key", r"params.yaml:build_report: unknown key 'titel'", stage="build_report",
         params={"titel": "x"}),
    Case("stage_retrain_classifier_missing_recipe_table", r"data/digits/test.parquet: file not found",
         stage="retrain_classifier", params={"recipe_stage": "train_classifier", "train_data": "train.parquet",
                                             "baseline": "ckpt", "out_dir": "retrained"}),
    Case("stage_forget_request_unknown_key", r"params.yaml:forget_request: unknown key 'bogus'",
         stage="forget_request", params={"bogus": 1}),
    Case("stage_unlearn_retrain_unknown_key", r"params.yaml:unlearn_retrain: unknown key 'bogus'",
         stage="unlearn_retrain", params={"bogus": 1}),
    Case("stage_unlearn_unknown_key", r"params.yaml:unlearn: unknown key 'bogus'", stage="unlearn",
         params={"bogus": 1}),
    Case("stage_verify_unlearning_unknown_key", r"params.yaml:verify_unlearning: unknown key 'bogus'",
         stage="verify_unlearning", params={"bogus": 1}),
    Case("stage_optimize_mixture_missing_checkpoint", r"absent.safetensors: checkpoint not found",
         stage="optimize_mixture", params={"checkpoint": "absent.safetensors"}),
    Case("stage_train_lm_mixture_unknown_key", r"params.yaml:train_lm_mixture: unknown key 'bogus'",
         stage="train_lm_mixture", params={"bogus": 1}),
    Case("stage_provenance_suspects_unknown_key", r"params.yaml:provenance_suspects: unknown key 'bogus'",
         stage="provenance_suspects", params={"bogus": 1}),
    Case("stage_test_provenance_unknown_key", r"params.yaml:test_provenance: unknown key 'bogus'",
         stage="test_provenance", params={"bogus": 1}),
    Case("stage_select_data_unknown_scorer", r"unknown method 'dsri'; did you mean 'dsir'\? \(valid: .*\)",
         stage="select_data", params={"pool": "texts.parquet", "target": "texts.parquet", "scorer": "dsri",
                                      "out_dir": "selected"}, outputs=("selected/manifest.json",)),
    Case("stage_select_data_unknown_scorer_option", r"unknown key 'n_gram'.*valid:", stage="select_data",
         params={"pool": "texts.parquet", "target": "texts.parquet", "options": {"n_gram": 3}, "out_dir": "selected"},
         outputs=("selected/manifest.json",)),
    Case("stage_select_data_unknown_key", r"params.yaml:select_data: unknown key 'bogus'", stage="select_data",
         params={"bogus": 1}),
    Case("stage_select_targeted_missing_checkpoints", r"nope: checkpoint not found", stage="select_targeted",
         params={"checkpoints": "nope", "pool": "texts.parquet", "targets": "tasks.parquet", "task_column": "task",
                 "out_dir": "selected"}, setup=TASKS, outputs=("selected/manifest.json",)),
    Case("stage_select_targeted_unknown_key", r"params.yaml:select_targeted: unknown key 'bogus'",
         stage="select_targeted", params={"bogus": 1}),
    Case("stage_refresh_predictor_not_a_predictor", r"params.yaml:refresh_predictor.*mates or nn_cift, got 'less'",
         stage="refresh_predictor", params={"method": "less"}),
    Case("stage_refresh_predictor_targets_without_task", r"texts.parquet: missing task column 'domain'",
         stage="refresh_predictor", params={"checkpoints": "lm.safetensors", "pool": "texts.parquet",
                                            "targets": "texts.parquet", "out_dir": "selected"},
         outputs=("selected/manifest.json",)),
    # the same through real processes (console entry point and a stage module)
    Case("real_process_validate_nan", ROW_NAN, ("validate", "{w}/bad.parquet", "--contract", "features"), setup=NAN,
         real_process=True),
    Case("real_process_influence_set_key", r"--set: unknown key 'bogus_key'", influence("--set", "bogus_key=1"),
         outputs=INFLUENCE_OUT, real_process=True),
    Case("real_process_stage_validate_data", ROW_RAGGED, stage="validate_data", setup=RAGGED, real_process=True,
         params={"report": "out/validation.json", "tables": [{"path": "bad.parquet", "contract": "features"}]},
         outputs=("out/validation.json",)),
]


@pytest.fixture(scope="module")
def good_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("good")
    _build_workspace(root)
    return root


@pytest.fixture(scope="module")
def mlflow_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedded MLflow store for every case (creating its tables takes seconds)."""
    return tmp_path_factory.mktemp("mlflow")


def _invoke(case: Case, work: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
            ) -> tuple[int, str]:
    argv = [a.replace("{w}", str(work)) for a in case.argv]
    if case.real_process:
        repo = Path(__file__).resolve().parents[2]
        code = (f"import runpy; runpy.run_module('curation.stages.{case.stage}', run_name='__main__')" if case.stage
                else "from curation.cli import main; main()")
        proc = subprocess.run([sys.executable, "-c", code, *argv], cwd=work, capture_output=True, text=True,
                              timeout=300, check=False, env={**os.environ, "PYTHONPATH": str(repo)})
        return proc.returncode, proc.stderr
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        if case.stage:
            importlib.import_module(f"curation.stages.{case.stage}").run()
        else:
            monkeypatch.setattr(sys, "argv", ["curate", *argv])
            main()
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, good_workspace: Path, mlflow_root: Path, tmp_path: Path,
                   capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "w"
    shutil.copytree(good_workspace, work)
    monkeypatch.chdir(work)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CURATION_PARENT_RUN_ID", raising=False)
    monkeypatch.setenv("CURATION_PROJECT_ROOT", str(mlflow_root))
    monkeypatch.setenv("CURATION_EXPERIMENT", "test")
    if case.stage:
        (work / "params.yaml").write_text(yaml.safe_dump({case.stage: case.params or {}}), encoding="utf-8")
    if case.setup:
        case.setup(work)
    for output in case.outputs:
        (work / output).parent.mkdir(parents=True, exist_ok=True)
        if not (work / output).exists():
            (work / output).write_bytes(GOOD_OUTPUT)
    before = {o: (work / o).read_bytes() for o in case.outputs}

    code, err = _invoke(case, work, capsys, monkeypatch)

    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len(errors) == 1, err
    if not case.real_process:
        assert len(lines) == 1, err
    else:  # a real process may log progress before it fails, never anything else
        assert all(re.match(r"(INFO|WARNING) ", line) for line in lines if line != errors[0]), err
    assert re.search(case.error, errors[0]), errors[0]
    assert {o: (work / o).read_bytes() for o in case.outputs} == before


def test_the_table_covers_every_command_and_stage() -> None:
    from curation.cli import COMMANDS
    from curation.stages import STAGE_CONFIGS

    assert len(CASES) >= 60
    covered = {c.argv[0] for c in CASES if c.argv}
    assert {name.replace("_", "-") for name in COMMANDS} - covered == set(), covered
    assert set(STAGE_CONFIGS) - {c.stage for c in CASES} == set()


def test_failed_stage_run_is_marked_failed(good_workspace: Path, tmp_path: Path, mlflow_store: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A stage that stops on bad input ends its MLflow run FAILED, tagged with the error line."""
    import mlflow

    from curation.stages import validate_data

    shutil.copytree(good_workspace, tmp_path / "w")
    monkeypatch.chdir(tmp_path / "w")
    NAN(tmp_path / "w")
    block = {"report": "out/validation.json", "tables": [{"path": "bad.parquet", "contract": "features"}]}
    (tmp_path / "w" / "params.yaml").write_text(yaml.safe_dump({"validate_data": block}), encoding="utf-8")
    with pytest.raises(SystemExit):
        validate_data.run()
    mlflow.set_tracking_uri(f"sqlite:///{mlflow_store / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["test"], output_format="list")
    assert [r.info.status for r in runs] == ["FAILED"]
    assert re.search(ROW_NAN, runs[0].data.tags["curation.error"])
