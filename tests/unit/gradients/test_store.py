"""GradientStore: metadata guard, idempotent index-addressed writes, done-mask and pending rows."""

import numpy as np
import pytest

from curation.errors import StoreMismatchError
from curation.gradients import GradientStore


def test_writes_mark_rows_done_and_are_idempotent(tmp_path) -> None:
    store = GradientStore(tmp_path / "s", {"adapter": "mlp"}, n_rows=10, dim=3)
    assert store.pending("5").tolist() == list(range(10))
    g = np.arange(12, dtype=np.float32).reshape(4, 3)
    store.write("5", 2, g, np.ones(4))
    store.write("5", 2, g, np.ones(4))  # same rows again: same content
    assert store.pending("5").tolist() == [0, 1, 6, 7, 8, 9]
    with pytest.raises(StoreMismatchError, match="6 of 10 rows not computed"):
        store.grads("5")
    store.write("5", 0, np.zeros((2, 3)), np.zeros(2))
    store.write("5", 6, np.full((4, 3), 2.0), np.zeros(4))
    reopened = GradientStore(tmp_path / "s", {"adapter": "mlp"}, n_rows=10, dim=3)
    assert reopened.is_complete("5") and not reopened.is_complete("6")
    np.testing.assert_array_equal(reopened.grads("5")[2:6], g)
    np.testing.assert_array_equal(reopened.values("5")[2:6], np.ones(4))


@pytest.mark.parametrize(
    "change", [{"meta": {"adapter": "logistic"}}, {"n_rows": 11}, {"dim": 4}, {"meta": {"adapter": "mlp", "x": 1}}]
)
def test_any_metadata_difference_is_refused(tmp_path, change) -> None:
    GradientStore(tmp_path, {"adapter": "mlp"}, n_rows=10, dim=3)
    kwargs = {"n_rows": 10, "dim": 3, **{k: v for k, v in change.items() if k != "meta"}}
    with pytest.raises(StoreMismatchError, match="metadata.json: store was written with"):
        GradientStore(tmp_path, change.get("meta", {"adapter": "mlp"}), **kwargs)


def test_out_of_range_write_is_rejected(tmp_path) -> None:
    store = GradientStore(tmp_path, {}, n_rows=4, dim=2)
    with pytest.raises(ValueError):
        store.write("a", 3, np.zeros((2, 2)), np.zeros(2))
    with pytest.raises(ValueError):
        store.write("a", 0, np.zeros((2, 3)), np.zeros(2))
    assert store.pending("a").size == 4
