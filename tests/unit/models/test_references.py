"""The one checkpoint-reference resolver: files, training folders, plain folders, models:/ and runs:/ URIs, plain
state dicts described by --adapter/--model-option/--lr, and one-line errors for every way a reference is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from curation.errors import CurationError
from curation.gradients.cli_support import plain_checkpoints
from curation.models.checkpoints import CheckpointInfo, save_checkpoint
from curation.models.classifiers import ClassifierConfig, MLPClassifierAdapter
from curation.models.references import PlainCheckpoints, load_models, resolve_checkpoints

CONFIG = {"n_features": 4, "n_classes": 3, "hidden": [5]}


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return MLPClassifierAdapter(ClassifierConfig(n_features=4, n_classes=3, hidden=(5,))).build_model()


def _run_folder(root: Path, lrs: list[float]) -> Path:
    """A training output folder written the way curation.training writes one (manifest in step order)."""
    root.mkdir(parents=True)
    entries = []
    for i, lr in enumerate(lrs):
        name = f"ckpt-{i:06d}.safetensors"
        save_checkpoint(root / name, _model(i).state_dict(),
                        CheckpointInfo(adapter="mlp", model_config=CONFIG, step=10 * (i + 1), learning_rate=lr))
        entries.append({"file": name, "step": 10 * (i + 1), "learning_rate": lr})
    import json

    (root / "checkpoints.json").write_text(json.dumps({"checkpoints": entries[::-1]}))  # order must not matter
    return root


def _folder_with_manifest(folder: Path, text: str) -> Path:
    folder.mkdir()
    (folder / "checkpoints.json").write_text(text)
    return folder


def test_training_folder_gives_every_checkpoint_in_step_order(tmp_path: Path) -> None:
    folder = _run_folder(tmp_path / "run", [0.3, 0.2, 0.1])
    assert [p.name for p in resolve_checkpoints(folder)] == [f"ckpt-{i:06d}.safetensors" for i in range(3)]
    adapter, loaded = load_models(folder, last=2)
    assert adapter.name == "mlp" and [lr for _, _, lr in loaded] == [0.2, 0.1]
    assert torch.equal(loaded[-1][1].state_dict()["0.weight"], _model(2).state_dict()["0.weight"])


def test_plain_state_dicts_load_with_adapter_options_and_learning_rates(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    for i in range(2):
        torch.save(_model(i).state_dict(), tmp_path / "mine" / f"epoch{i}.pt")
    with pytest.raises(CurationError, match=r"epoch0.pt: a plain state dict .* --adapter"):
        load_models(tmp_path / "mine")
    plain = plain_checkpoints("mlp", ["n_features=4", "n_classes=3", "hidden=[5]"], [0.5, 0.05])
    _, loaded = load_models(tmp_path / "mine", plain=plain)
    assert [lr for _, _, lr in loaded] == [0.5, 0.05]
    assert torch.equal(loaded[1][1].state_dict()["2.bias"], _model(1).state_dict()["2.bias"])
    with pytest.raises(CurationError, match="--lr: 3 learning rates for 2 checkpoints"):
        load_models(tmp_path / "mine", plain=PlainCheckpoints(adapter="mlp", model_options=CONFIG,
                                                              learning_rates=(1.0, 2.0, 3.0)))


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: d / "missing.safetensors", r"missing.safetensors: checkpoint not found"),
        (lambda d: (d / "empty").mkdir() or d / "empty", r"empty: folder has no checkpoints.json and no checkpoint files"),
        (lambda d: _run_folder(d / "r", [0.1]).joinpath("ckpt-000000.safetensors").unlink() or d / "r",
         r"checkpoints.json: lists ckpt-000000.safetensors, which is not in the folder"),
        (lambda d: _folder_with_manifest(d / "bad", "[1, 2]"),
         r"checkpoints.json: not a valid checkpoint manifest"),
    ],
    ids=["missing-file", "empty-folder", "manifest-names-missing-file", "corrupt-manifest"],
)
def test_bad_references_are_one_line_errors(tmp_path: Path, setup, message: str) -> None:
    with pytest.raises(CurationError, match=message) as err:
        resolve_checkpoints(setup(tmp_path))
    assert "\n" not in str(err.value)


def test_weights_that_cannot_be_the_model_name_the_tensor(tmp_path: Path) -> None:
    state = _model(0).state_dict()
    wrong = {**state, "0.weight": torch.zeros(5, 7)}
    save_checkpoint(tmp_path / "shape.safetensors", wrong, CheckpointInfo(adapter="mlp", model_config=CONFIG, step=1,
                                                                          learning_rate=0.1))
    with pytest.raises(CurationError, match=r"tensor '0.weight' has shape \[5, 7\], the model expects \[5, 4\]"):
        load_models(tmp_path / "shape.safetensors")
    nan = {**state, "2.bias": torch.tensor([0.0, float("nan"), 1.0])}
    save_checkpoint(tmp_path / "nan.safetensors", nan, CheckpointInfo(adapter="mlp", model_config=CONFIG, step=1,
                                                                      learning_rate=0.1))
    with pytest.raises(CurationError, match=r"tensor '2.bias' holds NaN or infinite weights"):
        load_models(tmp_path / "nan.safetensors")
    torch.save({k: v for k, v in state.items() if k != "2.bias"}, tmp_path / "partial.pt")
    with pytest.raises(CurationError, match=r"tensor '2.bias' is missing"):
        load_models(tmp_path / "partial.pt", plain=PlainCheckpoints(adapter="mlp", model_options=CONFIG))


def test_registry_and_run_artifact_references(mlflow_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from curation.config.stages import BuildReportConfig
    from curation.tracking.recorder import RunRecorder
    from curation.tracking.registry import register_checkpoint

    monkeypatch.chdir(mlflow_store)
    folder = _run_folder(mlflow_store / "run", [0.2, 0.1])
    with RunRecorder("train", BuildReportConfig()) as rec:
        version = register_checkpoint(folder / "ckpt-000001.safetensors", "mine")
        run_id = rec.run_id
    _, loaded = load_models(f"models:/mine/{version}")
    assert loaded[-1][2] == 0.1 and torch.equal(loaded[-1][1].state_dict()["0.bias"], _model(1).state_dict()["0.bias"])
    assert load_models("models:/mine/latest")[1][-1][2] == 0.1
    assert resolve_checkpoints(f"runs:/{run_id}/checkpoint")[-1].name == "ckpt-000001.safetensors"
    for ref in ("models:/nobody/1", "models:/mine/7", f"runs:/{'0' * 32}/checkpoint"):
        with pytest.raises(CurationError, match=r"cannot fetch from the MLflow store") as err:
            resolve_checkpoints(ref)
        assert str(err.value).startswith(ref) and "\n" not in str(err.value)
