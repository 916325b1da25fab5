"""The Ray executor runs the same shard function on a real (local, one-CPU) Ray cluster: the store it fills is
equal to the in-process one, and a failing shard stops the run with an error naming the shard.
(Task functions must be importable by Ray's worker processes, hence ``math.sqrt`` rather than a test helper.)"""

import math

import numpy as np
import polars as pl
import pytest

from curation.errors import CurationError
from curation.executors import ExecutorConfig, map_shards
from curation.gradients import featurize
from tests.unit.gradients.test_featurize import CFG, _digits_like, _mlp_checkpoints

ray = pytest.importorskip("ray", reason="the ray extra is not installed")
RAY = ExecutorConfig(kind="ray", num_cpus=1, max_in_flight=2)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_ray_store_equals_local_store(tmp_path) -> None:
    adapter, models = _mlp_checkpoints()
    frame = _digits_like()
    local = featurize(adapter, models, frame, str(tmp_path / "local"), CFG, show_progress=False)
    remote = featurize(adapter, models, frame, str(tmp_path / "ray"), CFG, show_progress=False, executor=RAY)
    for cid in models:
        assert remote.is_complete(cid)
        # Ray workers run torch with one thread, so sums may be ordered differently: equal up to float32 rounding
        np.testing.assert_allclose(remote.grads(cid), local.grads(cid), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(remote.values(cid), local.values(cid), rtol=1e-5, atol=1e-6)


def test_results_come_back_with_their_index_and_a_failure_names_the_shard() -> None:
    assert dict(map_shards(math.sqrt, [0.0, 1.0, 4.0], config=RAY)) == {0: 0.0, 1: 1.0, 2: 2.0}
    with pytest.raises(CurationError, match=r"ray executor: shard 3 failed: ValueError\('math domain error'\)"):
        list(map_shards(math.sqrt, [0.0, 1.0, 4.0, -1.0, 9.0], config=RAY))


def test_label_errors_cli_on_ray_matches_local(tmp_path) -> None:
    from click.testing import CliRunner

    from curation.cli import cli
    from tests.unit.selection.test_label_errors_cli import _noisy_blobs

    _noisy_blobs(tmp_path)
    outputs = {}
    for executor in ("local", "ray"):
        res = CliRunner().invoke(cli, ["label-errors", "--checkpoints", str(tmp_path / "ckpt"), "--train",
                                       str(tmp_path / "train.parquet"), "--executor", executor, "--out",
                                       str(tmp_path / executor)])
        assert res.exit_code == 0, res.output
        outputs[executor] = pl.read_parquet(tmp_path / executor / "selection.parquet")
    assert outputs["ray"]["example_id"].to_list() == outputs["local"]["example_id"].to_list()
    assert outputs["ray"]["keep"].to_list() == outputs["local"]["keep"].to_list()
    np.testing.assert_allclose(outputs["ray"]["score"].to_numpy(), outputs["local"]["score"].to_numpy(), rtol=1e-4)


def test_provenance_models_train_the_same_as_ray_tasks() -> None:
    """provenance_suspects' reference / null-bank models (``train_from_scratch``) as Ray tasks: the same weights
    as in process, the shared training table sent once."""
    import torch

    from curation.executors import ExecutorConfig
    from curation.models.gpt import ByteGPTAdapter
    from curation.provenance.retrain import OrderedTrainConfig, ScratchModel, train_from_scratch
    from curation.provenance.testbed import TINY_GPT
    from tests.unit.provenance.test_suspects_stage import text_table

    frame = text_table(32, 3)
    recipe = OrderedTrainConfig(learning_rate=3e-3, batch_size=8)
    jobs = [ScratchModel(f"null_{s}", s, ByteGPTAdapter(TINY_GPT), recipe) for s in (100, 101, 102)]
    local = dict(map_shards(train_from_scratch, jobs, shared={"frame": frame}, config=ExecutorConfig()))
    remote = dict(map_shards(train_from_scratch, jobs, shared={"frame": frame}, config=RAY))
    assert sorted(remote) == [0, 1, 2]
    for i in range(len(jobs)):
        for key in local[i]:  # one torch thread on the workers: equal up to summation order
            torch.testing.assert_close(remote[i][key], local[i][key], rtol=1e-4, atol=1e-5)
    assert any(not torch.equal(local[0][k], local[1][k]) for k in local[0])  # other seed, other model
